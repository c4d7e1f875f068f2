/** Who performs an operation: a user, an API key, a job. Recorded in audit rows. */
export interface Actor {
  /** Stable id: user id / API key id / `system:<job-name>`. */
  id: string;
  ip?: string;
  userAgent?: string;
}

/**
 * The caller's identity for one operation. Tenant isolation is enforced in the services with this,
 * not only in controllers: a service never touches a row of another tenant.
 */
export interface OperationContext {
  tenantId: string;
  actor: Actor;
  /** Correlates logs, audit rows and events of one request. */
  correlationId?: string;
  /**
   * Aborts when the caller has left (HTTP request aborted before its answer, gRPC call cancelled or past its
   * deadline), set by the host. Libs hand it to the vault (`KeyVaultCallOptions.signal`): Key Vault calls not
   * sent yet are dropped, reads in flight aborted; a write already sent finishes. Passed explicitly, never
   * through AsyncLocalStorage (its promise hooks cost ~10% of a warm read's CPU). Never audited or logged.
   */
  signal?: AbortSignal;
}

/** Context for work the system does on its own (cron jobs, migrations). */
export function systemContext(tenantId: string, job: string, correlationId?: string): OperationContext {
  return { tenantId, actor: { id: `system:${job}` }, correlationId };
}
