import type { AuditStats } from '../interfaces/audit-event.interface';

/** The writer's share of `AuditStats`. */
export type AuditWriterStats = Omit<AuditStats, 'brokenChains' | 'anchorsWritten' | 'anchorFailures'>;

/**
 * The writer's counts: ONE object, incremented in place by the writer, its group commit and its alert
 * reporter (a plain object: the read path bumps two of them per row).
 */
export type WriterCounters = Omit<AuditWriterStats, 'bufferDepth' | 'bufferWaiters' | 'healthy'>;

export function newWriterCounters(): WriterCounters {
  return {
    recorded: 0,
    readsAccepted: 0,
    readsFlushed: 0,
    flushFailures: 0,
    writeFailures: 0,
    readsRejected: 0,
    redactedKeys: 0,
    suspiciousActivities: 0,
  };
}

/** The counts and the read buffer's gauges, as `AuditService.stats` reports them. */
export function writerStats(counters: WriterCounters, reads: { depth: number; waiting: number; healthy: boolean }): AuditWriterStats {
  return { ...counters, bufferDepth: reads.depth, bufferWaiters: reads.waiting, healthy: reads.healthy };
}
