import type { OperationContext } from '@app/common';

/** What happened. Libraries may record their own actions too: any `snake_case` name is accepted. */
export enum AuditAction {
  STORE = 'store',
  READ = 'read',
  ROTATE = 'rotate',
  REFRESH = 'refresh',
  DELETE = 'delete',
  REVOKE = 'revoke',
  UNREVOKE = 'unrevoke',
  RESTORE = 'restore',
  ROLLBACK = 'rollback',
  MIGRATE = 'migrate',
  UPDATE_METADATA = 'update_metadata',
  POLICY_CHANGE = 'policy_change',
  AUTH_FAILURE = 'auth_failure',
  ACCESS_DENIED = 'access_denied',
  SUSPICIOUS_ACTIVITY = 'suspicious_activity',
  RETENTION_CHECKPOINT = 'retention_checkpoint',
}

/** An `AuditAction` or another lowercase name matching `^[a-z][a-z0-9_.:-]{0,63}$`. */
export type AuditActionName = AuditAction | (string & {});

export enum AuditResult {
  SUCCESS = 'success',
  FAILURE = 'failure',
  DENIED = 'denied',
  /** The operation got no answer and its effect could not be confirmed: it may or may not have happened. */
  UNKNOWN = 'unknown',
  /**
   * The caller left while the operation's request was in the vault (a read aborted in flight): nothing was
   * returned to anyone. Not a failure: it counts toward no suspicious-activity threshold.
   */
  CANCELLED = 'cancelled',
}

/** What the inputs (an event to record, a query) take for a result: the member or its string value (`'success'`). */
export type AuditResultInput = AuditResult | `${AuditResult}`;

/** One event to record. Never put a credential value anywhere in it (`details` is sanitised anyway). */
export interface AuditEventInput {
  action: AuditActionName;
  /** Tenant, actor (id, ip, user agent) and correlation id of the operation. */
  context: OperationContext;
  /** What was acted on: a credential id or a secret name. */
  resource: string;
  result: AuditResultInput;
  /** When `result` is not success: `auditErrorCode(error)` — `<code>:<codeName>`, or a name alone with no typed error (README). */
  errorCode?: string | number;
  durationMs?: number;
  /** Extra, non-secret facts. Keys that look like values (token, password, secret...) are stripped. */
  details?: Record<string, unknown>;
}

/** A stored audit row. */
export interface AuditLogEntryView {
  id: string;
  /** Position in the tenant's hash chain, 1-based and gap-free (until retention prunes a prefix). */
  sequence: number;
  occurredAt: Date;
  action: AuditActionName;
  tenantId: string;
  resource: string;
  actorId: string;
  actorIp: string | null;
  userAgent: string | null;
  result: AuditResult;
  errorCode: string | null;
  durationMs: number | null;
  correlationId: string | null;
  details: Record<string, unknown> | null;
  /** Hash of the previous row of the chain (64 zeros for the first). */
  previousHash: string;
  /** SHA-256 (hex) over this row's canonical encoding, including `previousHash`. */
  hash: string;
}

export interface AuditQuery {
  tenantId?: string;
  resource?: string;
  actorId?: string;
  action?: AuditActionName | AuditActionName[];
  result?: AuditResultInput | AuditResultInput[];
  correlationId?: string;
  /** Inclusive lower bound on `occurredAt`. */
  from?: Date;
  /** Exclusive upper bound on `occurredAt`. */
  to?: Date;
  /** Page size, 1..500. @default 100 */
  limit?: number;
  /** `nextCursor` of the previous page. Opaque. */
  cursor?: string;
  /** @default 'desc' (newest first) */
  order?: 'asc' | 'desc';
}

export interface AuditQueryPage {
  items: AuditLogEntryView[];
  /** Present when more rows match; pass it back as `cursor`. */
  nextCursor?: string;
}

/**
 * Why a chain failed verification. The last two compare it with its latest anchor (when an
 * `AuditAnchorStore` is provided): `anchor_mismatch` — the anchored row now has another hash (the
 * chain was rewritten); `truncated` — the chain ends before the anchored row (newest rows deleted).
 */
export type AuditVerifyFailureReason = 'hash_mismatch' | 'broken_link' | 'sequence_gap' | 'reordered' | 'anchor_mismatch' | 'truncated';

export interface AuditVerifyResult {
  valid: boolean;
  /** Rows checked (over all chains verified). */
  checked: number;
  /** Chains (tenants) verified. */
  chains: number;
  /** Chains also checked against an anchor (0 without an `AuditAnchorStore`). */
  anchorsChecked: number;
  /**
   * The first bad row of the first broken chain. For `truncated`, `sequence` is the anchored
   * sequence that is missing and `id` the chain's last row (empty when no row is left).
   */
  firstBad?: { id: string; sequence: number; tenantId: string; reason: AuditVerifyFailureReason };
}

/** Payload of `audit.chain_broken`: the first bad row, and who found it. */
export interface AuditChainBrokenEvent {
  tenantId: string;
  id: string;
  sequence: number;
  reason: AuditVerifyFailureReason;
  foundBy: 'verify' | 'anchor';
}

/** What one anchoring run did. */
export interface AnchorRunResult {
  /** Chains whose head was copied to the anchor store. */
  anchored: number;
  /** Chains whose head had not moved since their last anchor. */
  unchanged: number;
  /** Chains NOT anchored because they no longer match their previous anchor (see `verify`). */
  refused: string[];
  /** Chains not anchored this run because the store failed for them (retried next run). */
  failed: string[];
}

/** Counters the host can expose as metrics. Monotonic since start, except the gauges noted. */
export interface AuditStats {
  /** Gauge: reads waiting in the buffer (including the batch being written). */
  bufferDepth: number;
  /** Gauge: callers of `recordRead` waiting for buffer space. */
  bufferWaiters: number;
  /** Gauge: false while buffered writes are failing (with failClosed, reads are refused). */
  healthy: boolean;
  recorded: number;
  readsAccepted: number;
  readsFlushed: number;
  flushFailures: number;
  writeFailures: number;
  readsRejected: number;
  redactedKeys: number;
  suspiciousActivities: number;
  /** Broken chains found by verify or by the anchoring job (each finding counts). */
  brokenChains: number;
  /** Chain heads written to the anchor store. */
  anchorsWritten: number;
  /** Chains the anchoring job could not anchor because the store failed. */
  anchorFailures: number;
}
