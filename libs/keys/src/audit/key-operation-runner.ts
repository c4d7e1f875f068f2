import { auditErrorCode, AuditResult, type AuditService } from '@app/audit';
import { CredentialVaultError, inSpan, type OperationContext } from '@app/common';
import { isKeyVaultError, KeyVaultErrorCode } from '@app/key-vault';
import type { KeysMetrics, KeysOperation } from '../metrics/keys.metrics';
import { checkContext } from '../validation/key-request-checks';

/** What an operation tells the audit row and the metrics (never data). */
export interface UseDetails {
  algorithm?: string;
  keyVersion?: string;
  verifiedIn?: 'local' | 'vault';
  [k: string]: unknown;
}

/** The audit resource of a key: `key:<name in lower case>` (`key:*` for a list). */
function keyAuditResource(name: string): string {
  return `key:${name.toLowerCase()}`;
}

export type KeyWork<T> = () => Promise<{ result: T } & UseDetails>;

/**
 * Runs each KeysService operation in a span, measures it and audits it (`key.<operation>`, resource
 * `key:<name>` in lower case, its details — never data), failures included; errors pass through unchanged. A caller who
 * left (CANCELLED): no row when no vault request was sent for it, a `cancelled` row when one was aborted.
 */
export class KeyOperationRunner {
  constructor(
    private readonly audit: AuditService,
    private readonly metrics: KeysMetrics,
  ) {}

  /** A state change: audited with `record` (the call fails if its audit row cannot be written). */
  managed<T>(ctx: OperationContext, operation: KeysOperation, name: string, details: UseDetails, work: KeyWork<T>): Promise<T> {
    return this.run(ctx, operation, name, details, work, (event) => this.audit.record(event).then(() => undefined));
  }

  /** A use or a read: audited through the buffered `recordRead`. */
  used<T>(ctx: OperationContext, operation: KeysOperation, name: string, details: UseDetails, work: KeyWork<T>): Promise<T> {
    return this.run(ctx, operation, name, details, work, (event) => this.audit.recordRead(event));
  }

  private run<T>(
    ctx: OperationContext,
    operation: KeysOperation,
    name: string,
    details: UseDetails,
    work: KeyWork<T>,
    write: (event: Parameters<AuditService['record']>[0]) => Promise<void>,
  ): Promise<T> {
    try {
      checkContext(ctx);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    const attributes: Record<string, string> = { 'keys.operation': operation, 'tenant.id': ctx.tenantId };
    if (details.algorithm) attributes['keys.algorithm'] = details.algorithm;
    // A caller who left ends the span UNSET, marked as the vault call's is, as the metrics count it (outcome cancelled).
    const notAnError = (e: unknown) => (isKeyVaultError(e, KeyVaultErrorCode.CANCELLED) ? { 'keys.cancelled': e.sent === true ? 'in_flight' : 'not_sent' } : undefined);
    return inSpan(`keys ${operation}`, { attributes, notAnError }, async (span) => {
      const started = performance.now();
      // Names are case-insensitive (one vault key): one resource per key, whatever case each caller typed.
      const base = { action: `key.${operation}`, context: ctx, resource: keyAuditResource(name) };
      let outcome: ({ result: T } & UseDetails) | undefined;
      try {
        outcome = await work();
      } catch (e) {
        const durationMs = performance.now() - started;
        const cancelled = isKeyVaultError(e, KeyVaultErrorCode.CANCELLED);
        this.metrics.record({ operation, outcome: cancelled ? 'cancelled' : e instanceof CredentialVaultError ? e.severity : 'fatal', algorithm: details.algorithm }, durationMs / 1000);
        // The caller left: a call never sent is no use of the key (no row); one aborted in the vault is audited as cancelled, never as a failure.
        if (cancelled && e.sent !== true) throw e;
        // A change the vault may have made without confirming it is not audited as a failure.
        const result = cancelled ? AuditResult.CANCELLED : isKeyVaultError(e, KeyVaultErrorCode.OUTCOME_UNKNOWN) ? AuditResult.UNKNOWN : AuditResult.FAILURE;
        await write({ ...base, result, errorCode: auditErrorCode(e), durationMs, details: { ...details, operation } }).catch(() => undefined);
        throw e;
      }
      const { result, ...facts } = outcome;
      const durationMs = performance.now() - started;
      if (facts.verifiedIn) span.setAttribute('keys.verified_in', facts.verifiedIn);
      this.metrics.record({ operation, outcome: 'success', algorithm: details.algorithm, verifiedIn: facts.verifiedIn }, durationMs / 1000);
      await write({ ...base, result: AuditResult.SUCCESS, durationMs, details: { ...details, ...facts, operation } });
      return result;
    });
  }
}
