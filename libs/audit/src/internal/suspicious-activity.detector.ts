import type { Clock } from '@app/common';
import { AuditAction, AuditResult } from '../interfaces/audit-event.interface';
import {
  InProcessSuspiciousActivityCounters,
  SuspiciousActivityCounters,
  SuspiciousCounterHit,
  SuspiciousCounterResult,
} from '../suspicious-activity.counters';

export type SuspiciousActivityKind = 'failures_by_actor' | 'failures_by_resource' | 'distinct_reads_by_actor';

/** Payload of the `audit.suspicious_activity` event. */
export interface SuspiciousActivityEvent {
  kind: SuspiciousActivityKind;
  tenantId: string;
  /** The actor concerned (failures_by_actor, distinct_reads_by_actor). */
  actorId?: string;
  /** The resource concerned (failures_by_resource). */
  resource?: string;
  /** Failures, or distinct credentials read, within the window at detection time. */
  count: number;
  threshold: number;
  windowMs: number;
  detectedAt: Date;
  correlationId?: string;
}

export interface SuspiciousActivityThresholds {
  failureThreshold: number;
  windowMs: number;
  distinctReadsThreshold: number;
  distinctReadsWindowMs: number;
}

export interface ObservedEvent {
  action: string;
  tenantId: string;
  actorId: string;
  resource: string;
  result: AuditResult;
  correlationId?: string | null;
}

/**
 * Sliding-window counters kept in memory (per process): the audit lib's default. `observe` answers
 * in the audited call itself.
 */
export class SuspiciousActivityDetector {
  private readonly counters: InProcessSuspiciousActivityCounters;

  constructor(
    private readonly thresholds: SuspiciousActivityThresholds,
    private readonly clock: Clock,
    /** Upper bound on tracked keys per map; the least recently touched are forgotten beyond it. */
    maxKeys = 100_000,
  ) {
    this.counters = new InProcessSuspiciousActivityCounters(maxKeys);
  }

  /** Feeds one recorded event; returns the alerts it triggers (at most one per key and window). */
  observe(e: ObservedEvent): SuspiciousActivityEvent[] {
    const hits = counterHits(e, this.thresholds);
    if (hits.length === 0) return [];
    const now = this.clock.now().getTime();
    return alertsFor(e, hits, this.counters.hitNow(now, hits), now);
  }

  /** Keys tracked (for tests / memory metrics). */
  get trackedKeys(): number {
    return this.counters.trackedKeys;
  }
}

/**
 * The same detection on shared counters (`SuspiciousActivityCounters` provided by the host, e.g.
 * Redis): thresholds count what every replica saw, and each alert is raised by one replica per window.
 */
export class SharedSuspiciousActivityDetector {
  constructor(
    private readonly thresholds: SuspiciousActivityThresholds,
    private readonly clock: Clock,
    private readonly counters: SuspiciousActivityCounters,
  ) {}

  async observe(e: ObservedEvent): Promise<SuspiciousActivityEvent[]> {
    const hits = counterHits(e, this.thresholds);
    if (hits.length === 0) return [];
    const now = this.clock.now().getTime();
    return alertsFor(e, hits, await this.counters.hit(now, hits), now);
  }
}

type Hit = SuspiciousCounterHit & { kind: SuspiciousActivityKind };

/** The counters one event touches: failures by actor and by resource, or distinct reads by actor. */
function counterHits(e: ObservedEvent, t: SuspiciousActivityThresholds): Hit[] {
  if (e.action === AuditAction.SUSPICIOUS_ACTIVITY || e.action === AuditAction.RETENTION_CHECKPOINT) return [];
  if (e.result === AuditResult.FAILURE || e.result === AuditResult.DENIED) {
    const common = { windowMs: t.windowMs, alertAt: t.failureThreshold };
    return [
      { kind: 'failures_by_actor', key: `fa\u0000${e.tenantId}\u0000${e.actorId}`, ...common },
      { kind: 'failures_by_resource', key: `fr\u0000${e.tenantId}\u0000${e.resource}`, ...common },
    ];
  }
  if (e.action === AuditAction.READ && e.result === AuditResult.SUCCESS) {
    // "More than" the threshold of distinct credentials.
    return [
      {
        kind: 'distinct_reads_by_actor',
        key: `dr\u0000${e.tenantId}\u0000${e.actorId}`,
        member: e.resource,
        windowMs: t.distinctReadsWindowMs,
        alertAt: t.distinctReadsThreshold + 1,
      },
    ];
  }
  return [];
}

function alertsFor(e: ObservedEvent, hits: Hit[], results: SuspiciousCounterResult[], now: number): SuspiciousActivityEvent[] {
  const alerts: SuspiciousActivityEvent[] = [];
  hits.forEach((h, i) => {
    const r = results[i];
    if (!r?.alert) return;
    alerts.push({
      kind: h.kind,
      tenantId: e.tenantId,
      ...(h.kind === 'failures_by_resource' ? { resource: e.resource } : { actorId: e.actorId }),
      count: r.count,
      threshold: h.kind === 'distinct_reads_by_actor' ? h.alertAt - 1 : h.alertAt,
      windowMs: h.windowMs,
      detectedAt: new Date(now),
      correlationId: e.correlationId ?? undefined,
    });
  });
  return alerts;
}
