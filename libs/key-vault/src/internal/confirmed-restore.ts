import type { Logger } from '@nestjs/common';
import { KeyVaultErrorCode } from '../errors/key-vault-error-code';
import { KeyVaultError } from '../errors/key-vault.error';
import { keyVaultMessage } from '../errors/key-vault-message';
import { toKeyVaultError } from '../errors/map-key-vault-error';
import type { AttemptContext } from '../resilience/key-vault.resilience';
import { confirmBeforeResend } from './confirm-before-resend';

/** A restore of a backup (a key's or a secret's) that tells a retry's 409 after a lost answer from a conflict. */
export interface ConfirmedRestore<T> {
  operation: 'restoreKeyBackup' | 'restoreSecretBackup';
  /** What is restored, for messages. */
  kind: 'key' | 'secret';
  /** The backup's object name and one version it holds; without it a retry's 409 cannot be told. */
  expected?: { name: string; version: string };
  restore(signal: AbortSignal): Promise<T>;
  /** The object `name` read back: that version, or the latest (the answer) when `version` is undefined. */
  read(name: string, version: string | undefined, signal: AbortSignal): Promise<T>;
  logger: Logger;
}

/**
 * The attempts of a restore (`KeyVaultResilience.execute`'s `fn`). After an attempt that may have landed, a 409 (the
 * object exists) may be that restore: it is when the object holds the backup's version (version ids are the vault's,
 * random, and a restore keeps them), and its latest version is the answer. Otherwise — no version to compare, the
 * object does not hold it, or a version cannot be read (missing, forbidden, disabled) — it cannot be told:
 * OUTCOME_UNKNOWN, never CONFLICT. A 409 on a first attempt, or after only 429s, stays CONFLICT.
 */
export function confirmedRestore<T>(r: ConfirmedRestore<T>): (ctx: AttemptContext) => Promise<T> {
  const { operation, kind, expected } = r;
  const unknown = (conflict: unknown, detail: string) =>
    new KeyVaultError(KeyVaultErrorCode.OUTCOME_UNKNOWN, keyVaultMessage(operation, KeyVaultErrorCode.OUTCOME_UNKNOWN, { detail }), {
      operation,
      secretName: expected?.name,
      cause: conflict,
    });
  const readBack = async (version: string | undefined, conflict: unknown, signal: AbortSignal): Promise<T> => {
    const { name } = expected as { name: string };
    try {
      return await r.read(name, version, signal);
    } catch (e) {
      const code = toKeyVaultError(e, { operation, secretName: name }).code;
      if (code === KeyVaultErrorCode.KEY_NOT_FOUND || code === KeyVaultErrorCode.FORBIDDEN || code === KeyVaultErrorCode.DISABLED) {
        const what = version === undefined ? 'its latest version could not be read' : `the ${kind} of that name does not show the backup's version`;
        throw unknown(conflict, `an earlier attempt may have restored it (the retry found the ${kind}), and ${what}`);
      }
      throw e;
    }
  };
  return confirmBeforeResend(operation, expected?.name, async ({ signal }, earlierMayHaveLanded) => {
    try {
      return await r.restore(signal);
    } catch (e) {
      if (!earlierMayHaveLanded || toKeyVaultError(e, { operation, secretName: expected?.name }).code !== KeyVaultErrorCode.CONFLICT) throw e;
      if (expected === undefined) throw unknown(e, `an earlier attempt may have restored it (the retry found the ${kind}), and no version of the backup was given to check`);
      await readBack(expected.version, e, signal);
      r.logger.warn(`Key Vault ${operation}: an earlier attempt's answer was lost; the ${kind} read back holds the backup's version, so it is the result`);
      return readBack(undefined, e, signal);
    }
  });
}
