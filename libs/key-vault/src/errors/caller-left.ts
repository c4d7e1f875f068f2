import { KeyVaultErrorCode } from './key-vault-error-code';
import { keyVaultMessage } from './key-vault-message';
import { KeyVaultError, type KeyVaultOperation } from './key-vault.error';

/** Where a call of a caller who left stood when it left. */
export type CallerLeftStage =
  /** Dropped before its request was sent (queued, between retries): nothing was read for it (`sent: false`). */
  | 'not_sent'
  /** Its request aborted in flight (`sent: true`). */
  | 'in_flight'
  /**
   * It left a read shared with other callers (a cache's single-flight load), which had begun for it and may go on for
   * them (`sent: true`: audited as cancelled, like a read aborted in flight).
   */
  | 'shared';

const DETAIL: Record<CallerLeftStage, string> = {
  not_sent: 'dropped before it was sent',
  in_flight: 'aborted in flight',
  shared: 'stopped waiting for a read shared with other callers',
};

/** CANCELLED (1019): the caller of `operation` left. Neither retried, nor a breaker failure, nor an audit `failure`. */
export function callerLeftError(operation: KeyVaultOperation, stage: CallerLeftStage, details: { secretName?: string; cause?: unknown } = {}): KeyVaultError {
  return new KeyVaultError(KeyVaultErrorCode.CANCELLED, keyVaultMessage(operation, KeyVaultErrorCode.CANCELLED, { detail: DETAIL[stage] }), {
    operation,
    secretName: details.secretName,
    sent: stage !== 'not_sent',
    cause: details.cause,
  });
}
