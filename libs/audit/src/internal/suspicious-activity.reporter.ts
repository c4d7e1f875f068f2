import type { Logger } from '@nestjs/common';
import type { EventEmitter2 } from '@nestjs/event-emitter';
import { describeError } from '@app/common';
import { AUDIT_SUSPICIOUS_ACTIVITY_EVENT, AUDIT_SYSTEM_ACTOR } from '../audit.constants';
import { AuditAction, AuditEventInput, AuditResult } from '../interfaces/audit-event.interface';
import type { PreparedEvent } from './prepare-event';
import type { ObservedEvent, SuspiciousActivityEvent } from './suspicious-activity.detector';

/** What the reporter needs of the AuditWriter that owns it. */
export interface SuspiciousActivityReporterDeps {
  detector: { observe(e: ObservedEvent): SuspiciousActivityEvent[] | Promise<SuspiciousActivityEvent[]> };
  logger: Logger;
  events?: EventEmitter2;
  /** Writes the alert's own audit row, outside any ambient transaction (the writer's `record`, detached). */
  record(event: AuditEventInput): Promise<unknown>;
  /** Work the writer's shutdown must wait for. */
  track(work: Promise<unknown>): void;
  /** Counts one raised alert in the writer's stats. */
  counted(): void;
}

/**
 * Watches what the writer appends for suspicious activity and raises each alert: a warning line, the
 * `AUDIT_SUSPICIOUS_ACTIVITY_EVENT` for the host's listeners, and an audit row of its own.
 */
export class SuspiciousActivityReporter {
  constructor(private readonly deps: SuspiciousActivityReporterDeps) {}

  observe(e: PreparedEvent): void {
    const alerts = this.deps.detector.observe(e);
    if (Array.isArray(alerts)) {
      for (const alert of alerts) this.raise(alert);
      return;
    }
    // Shared counters answer later: the audited call does not wait for them (shutdown does).
    this.deps.track(
      alerts
        .then((list) => list.forEach((alert) => this.raise(alert)))
        .catch((err: unknown) => this.deps.logger.warn(`Suspicious-activity counters failed: ${describeError(err)}`)),
    );
  }

  private raise(alert: SuspiciousActivityEvent): void {
    const { logger, events } = this.deps;
    this.deps.counted();
    logger.warn(
      `Suspicious activity (${alert.kind}) in tenant ${alert.tenantId}: ${alert.count} within ${alert.windowMs} ms ` +
        `(threshold ${alert.threshold}) actor=${alert.actorId ?? '-'} resource=${alert.resource ?? '-'}`,
    );
    try {
      events?.emit(AUDIT_SUSPICIOUS_ACTIVITY_EVENT, alert);
    } catch (e) {
      logger.error(`A listener of ${AUDIT_SUSPICIOUS_ACTIVITY_EVENT} threw: ${describeError(e)}`);
    }
    // Not awaited: the triggering call may hold an open transaction the row must neither wait for nor join.
    this.deps.track(this.deps.record(alertEvent(alert)).catch(() => undefined)); // logged and counted by record()
  }
}

/** The audit row of an alert. */
function alertEvent(alert: SuspiciousActivityEvent): AuditEventInput {
  return {
    action: AuditAction.SUSPICIOUS_ACTIVITY,
    context: { tenantId: alert.tenantId, actor: { id: AUDIT_SYSTEM_ACTOR }, correlationId: alert.correlationId },
    resource: alert.resource ?? `actor:${alert.actorId}`,
    result: AuditResult.SUCCESS,
    details: {
      kind: alert.kind,
      actorId: alert.actorId,
      resource: alert.resource,
      count: alert.count,
      threshold: alert.threshold,
      windowMs: alert.windowMs,
    },
  };
}
