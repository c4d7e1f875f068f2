/** Event emitted (EventEmitter2) when suspicious activity is detected; payload `SuspiciousActivityEvent`. */
export const AUDIT_SUSPICIOUS_ACTIVITY_EVENT = 'audit.suspicious_activity';

/** Event emitted (EventEmitter2) when verify or the anchoring job finds a broken chain; payload `AuditChainBrokenEvent`. */
export const AUDIT_CHAIN_BROKEN_EVENT = 'audit.chain_broken';

/** Name of the retention cron job (its lock key is `LOCK_KEYS.auditRetention`, the same string). */
export const AUDIT_RETENTION_JOB = 'audit-retention';

/** Actor id of rows the audit lib writes itself. */
export const AUDIT_SYSTEM_ACTOR = 'system:audit';

/** Name of the anchoring cron job (its lock key is `LOCK_KEYS.auditAnchor`, the same string). */
export const AUDIT_ANCHOR_JOB = 'audit-anchor';
