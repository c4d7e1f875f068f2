/** Stable error codes. Never renumber: callers and dashboards key on these. */
export enum KeyVaultErrorCode {
  RATE_LIMITED = 1001,
  UNAUTHORIZED = 1002,
  KEY_NOT_FOUND = 1003,
  INVALID_REQUEST = 1004,
  TIMEOUT = 1005,
  SERVICE_UNAVAILABLE = 1006,
  /** 409 other than a soft-deleted name (e.g. a concurrent operation on the same secret). */
  CONFLICT = 1007,
  /** 409 ObjectIsDeletedButRecoverable: the name is soft-deleted; recover or purge it first. */
  DELETED_BUT_RECOVERABLE = 1008,
  /** 403 on a disabled secret (Azure answers Forbidden for a disabled secret's value). */
  DISABLED = 1009,
  /** 403 for missing permissions (access policy / RBAC). */
  FORBIDDEN = 1010,
  /** Our circuit breaker is open: calls fail fast without reaching the vault. */
  CIRCUIT_OPEN = 1011,
  /** Our bulkhead is full: too many concurrent calls queued. */
  BULKHEAD_FULL = 1012,
  /** Options or configuration are invalid (caught before any call). */
  CONFIGURATION = 1013,
  /** Backup refused, e.g. more than 500 versions, or a corrupt backup blob on restore. */
  BACKUP_FAILED = 1014,
  /** Purge refused: the vault has purge protection. */
  PURGE_PROTECTED = 1015,
  /** The vault answered 2xx without a field the contract needs (e.g. a getSecret answer without a value). */
  INVALID_RESPONSE = 1016,
  /**
   * 409 ObjectIsBeingDeleted: a delete or purge of the name is still completing; retried, then surfaced. Also a
   * restore's 409 over a name with nothing live and nothing deleted (a delete, purge or recover completing: they read alike).
   */
  OBJECT_BEING_DELETED = 1017,
  /**
   * A write that must not happen twice (create or rotate a key; restore a key or secret backup, whose retry
   * found the object, or that ended transient or CIRCUIT_OPEN after an attempt that may have landed) got no usable answer and its effect could not be confirmed by reading the object back: it may or may
   * not have happened. Never retried blindly.
   */
  OUTCOME_UNKNOWN = 1018,
  /**
   * The caller left (HTTP request aborted, gRPC call cancelled or past its deadline) and passed its signal:
   * the call was dropped before it was sent (queued in the bulkhead, or between retries), or a read in flight
   * was aborted. Not a vault failure: no retry, no circuit-breaker count. `KeyVaultError.sent` says which.
   */
  CANCELLED = 1019,
  /**
   * 409 ObjectIsBeingRecovered: a recover of the name is still completing (Azure may answer it for a moment even after
   * the recover's poller finished); retried, then surfaced. Also a restore's 409 over a name with nothing live and
   * nothing deleted while this provider is recovering it.
   */
  OBJECT_BEING_RECOVERED = 1020,
  /**
   * A delete took effect, but while it waited for the deletion to show the object was seen live again: recovered (or,
   * after a purge, written anew) by another client meanwhile. The deletion is undone; nothing is retried (a retry would
   * delete what that client brought back): the caller decides.
   */
  DELETE_UNDONE = 1021,
  UNKNOWN = 1099,
}
