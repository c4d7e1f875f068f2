import type { Clock } from '@app/common';
import { AuditAction, AuditResult } from '../interfaces/audit-event.interface';

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

/** Sliding-window counters kept in memory (per process). */
export class SuspiciousActivityDetector {
  /** key → ascending timestamps of failures/denials in the window. */
  private readonly failures = new Map<string, number[]>();
  /** actor key → resource → last read time; Map order = ascending last read time. */
  private readonly reads = new Map<string, Map<string, number>>();
  /** key → time until which a new alert for it is suppressed. */
  private readonly quietUntil = new Map<string, number>();
  private observations = 0;

  constructor(
    private readonly thresholds: SuspiciousActivityThresholds,
    private readonly clock: Clock,
    /** Upper bound on tracked keys per map; the least recently touched are forgotten beyond it. */
    private readonly maxKeys = 100_000,
  ) {}

  /** Feeds one recorded event; returns the alerts it triggers (at most one per key and window). */
  observe(e: ObservedEvent): SuspiciousActivityEvent[] {
    if (e.action === AuditAction.SUSPICIOUS_ACTIVITY || e.action === AuditAction.RETENTION_CHECKPOINT) return [];
    const now = this.clock.now().getTime();
    if (++this.observations % 1024 === 0) this.sweep(now);
    const alerts: SuspiciousActivityEvent[] = [];
    const base = { tenantId: e.tenantId, detectedAt: new Date(now), correlationId: e.correlationId ?? undefined };

    if (e.result === AuditResult.FAILURE || e.result === AuditResult.DENIED) {
      const { failureThreshold: threshold, windowMs } = this.thresholds;
      const byActor = this.countFailure(`a\u0000${e.tenantId}\u0000${e.actorId}`, now);
      if (byActor >= threshold && this.mayAlert(`fa\u0000${e.tenantId}\u0000${e.actorId}`, now, windowMs)) {
        alerts.push({ ...base, kind: 'failures_by_actor', actorId: e.actorId, count: byActor, threshold, windowMs });
      }
      const byResource = this.countFailure(`r\u0000${e.tenantId}\u0000${e.resource}`, now);
      if (byResource >= threshold && this.mayAlert(`fr\u0000${e.tenantId}\u0000${e.resource}`, now, windowMs)) {
        alerts.push({ ...base, kind: 'failures_by_resource', resource: e.resource, count: byResource, threshold, windowMs });
      }
    } else if (e.action === AuditAction.READ && e.result === AuditResult.SUCCESS) {
      const { distinctReadsThreshold: threshold, distinctReadsWindowMs: windowMs } = this.thresholds;
      const key = `${e.tenantId}\u0000${e.actorId}`;
      const distinct = this.countRead(key, e.resource, now);
      if (distinct > threshold && this.mayAlert(`dr\u0000${key}`, now, windowMs)) {
        alerts.push({ ...base, kind: 'distinct_reads_by_actor', actorId: e.actorId, count: distinct, threshold, windowMs });
      }
    }
    return alerts;
  }

  /** Keys tracked (for tests / memory metrics). */
  get trackedKeys(): number {
    return this.failures.size + this.reads.size + this.quietUntil.size;
  }

  private countFailure(key: string, now: number): number {
    const cutoff = now - this.thresholds.windowMs;
    let times = this.failures.get(key);
    if (!times) {
      times = [];
      this.bound(this.failures);
    } else {
      this.failures.delete(key); // re-insert: Map order = least recently touched first
    }
    this.failures.set(key, times);
    times.push(now);
    let drop = 0;
    while (drop < times.length && times[drop] <= cutoff) drop++;
    if (drop) times.splice(0, drop);
    return times.length;
  }

  private countRead(key: string, resource: string, now: number): number {
    const cutoff = now - this.thresholds.distinctReadsWindowMs;
    let seen = this.reads.get(key);
    if (!seen) {
      seen = new Map();
      this.bound(this.reads);
    } else {
      this.reads.delete(key);
    }
    this.reads.set(key, seen);
    seen.delete(resource);
    seen.set(resource, now);
    for (const [r, t] of seen) {
      if (t > cutoff) break;
      seen.delete(r);
    }
    return seen.size;
  }

  private mayAlert(key: string, now: number, windowMs: number): boolean {
    const until = this.quietUntil.get(key);
    if (until !== undefined && now < until) return false;
    this.quietUntil.set(key, now + windowMs);
    return true;
  }

  private bound(map: Map<string, unknown>): void {
    while (map.size >= this.maxKeys) {
      const oldest = map.keys().next().value as string;
      map.delete(oldest);
    }
  }

  /** Forgets keys with nothing left in their window. */
  private sweep(now: number): void {
    const fCut = now - this.thresholds.windowMs;
    for (const [k, times] of this.failures) if (!times.length || times[times.length - 1] <= fCut) this.failures.delete(k);
    const rCut = now - this.thresholds.distinctReadsWindowMs;
    for (const [k, seen] of this.reads) {
      let last = 0;
      for (const t of seen.values()) last = t;
      if (last <= rCut) this.reads.delete(k);
    }
    for (const [k, until] of this.quietUntil) if (until <= now) this.quietUntil.delete(k);
  }
}
