/**
 * Stand-ins for `AuditService` and `ReadAuditCoalescer` in the "no audit" baselines only: they accept
 * everything and write nothing, so the baseline does no audit work at all.
 */
export const noopAudit = {
  healthy: true,
  bufferDepth: 0,
  stats: { healthy: true, bufferDepth: 0, bufferWaiters: 0 },
  record: async () => ({}),
  recordMany: async () => undefined,
  recordRead: async () => undefined,
  flush: async () => undefined,
};

export const noopReadAudit = { record: () => Promise.resolve(), flush: async () => undefined, pendingEvents: 0 };
