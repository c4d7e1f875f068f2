import type { Logger } from '@nestjs/common';
import { ErrorSeverity } from '@app/common';
import { KeyVaultErrorCode } from '../errors/key-vault-error-code';
import { codeNameOf, KeyVaultError, severityOf } from '../errors/key-vault.error';
import { keyVaultMessage } from '../errors/key-vault-message';
import { toKeyVaultError } from '../errors/map-key-vault-error';
import type { KeyVaultResilience } from '../resilience/key-vault.resilience';
import { confirmBeforeResend, type ConfirmingAttempts } from './confirm-before-resend';

/** A restore of a backup (a key's or a secret's) that tells its 409 — a purge completing, a retry's lost answer — from a conflict. */
export interface ConfirmedRestore<T> {
  operation: 'restoreKeyBackup' | 'restoreSecretBackup';
  /** What is restored, for messages. */
  kind: 'key' | 'secret';
  /** The backup's object name and one version it holds; without it a retry's 409 cannot be told. */
  expected?: { name: string; version: string };
  restore(signal: AbortSignal): Promise<T>;
  /** The object `name` read back: that version, or the latest (the answer) when `version` is undefined. */
  read(name: string, version: string | undefined, signal: AbortSignal): Promise<T>;
  /** The soft-deleted object `name` read (its answer is dropped): whether one exists. */
  readDeleted(name: string, signal: AbortSignal): Promise<unknown>;
  /** Whether this provider is recovering `name` (an attempt in flight): what the reads alone cannot tell. */
  recovering(name: string): boolean;
  logger: Logger;
}

/**
 * The name of the object a restore's 409 names. The conflict (for a live name and for a purge still completing
 * alike) quotes the id of the backup's latest version: "There was a conflict restoring the secret
 * '<vault>/secrets/<name>/<version>'…" (recorded); a soft-deleted name's answer starts "Secret|Key <name> is currently
 * in a deleted but recoverable state…". Read to classify the conflict and for `secretName` (so a caller without the
 * backup's name can recover or purge it), never put in a message.
 */
export function restoreConflictName(e: unknown): string | undefined {
  const text = e instanceof Error ? e.message : '';
  return (
    /conflict restoring the (?:secret|key) '[^'\s]*?\/(?:secrets|keys)\/([0-9a-zA-Z-]{1,127})(?:\/[0-9a-zA-Z]*)?'/i.exec(text)?.[1] ??
    /^(?:secret|key) ([0-9a-zA-Z-]{1,127}) is currently in a deleted but recoverable state/i.exec(text)?.[1]
  );
}

/**
 * A restore, run through `resilience` (its attempts: below). It is over when the resilience gives up: if an attempt
 * may have landed (cut off by the timeout while in flight, or a 5xx) and the call ends without a definite answer —
 * a transient code: the attempts spent on OBJECT_BEING_DELETED or _RECOVERED (a free name does not show a restore still in flight
 * did not land after the read), 5xx, timeouts or 429s, or CIRCUIT_OPEN (the breaker opened before the next attempt) —
 * that restore may still land: OUTCOME_UNKNOWN, its cause the error the call ended with.
 */
export async function confirmedRestore<T>(resilience: Pick<KeyVaultResilience, 'execute'>, r: ConfirmedRestore<T>): Promise<T> {
  const attempts = restoreAttempts(r);
  try {
    return await resilience.execute(r.operation, r.expected?.name, attempts);
  } catch (e) {
    const ended = toKeyVaultError(e, { operation: r.operation, secretName: r.expected?.name });
    if (!attempts.mayHaveLanded || ended.code === KeyVaultErrorCode.OUTCOME_UNKNOWN || severityOf(ended.code) !== ErrorSeverity.TRANSIENT) throw e;
    const detail = `an attempt may have restored it (its answer was lost), and the call ended ${codeNameOf(ended.code)}`;
    throw outcomeUnknown(r.operation, ended, detail, ended.secretName ?? r.expected?.name);
  }
}

function outcomeUnknown(operation: ConfirmedRestore<unknown>['operation'], cause: unknown, detail: string, name: string | undefined): KeyVaultError {
  return new KeyVaultError(KeyVaultErrorCode.OUTCOME_UNKNOWN, keyVaultMessage(operation, KeyVaultErrorCode.OUTCOME_UNKNOWN, { detail }), { operation, secretName: name, cause });
}

/**
 * The attempts of a restore (`KeyVaultResilience.execute`'s `fn`). The vault answers a restore 409 with no inner code
 * both when the name is taken and while a purge of it is still completing (for seconds after the purge's 204), so
 * a 409 is resolved by reading the name (the backup's, from the answer or `expected`):
 * - nothing live and nothing soft-deleted: a purge, a delete or a recover is completing, which read alike —
 *   OBJECT_BEING_RECOVERED when this provider is recovering the name, else OBJECT_BEING_DELETED; retried like the other
 *   transient faults (a later read-back finds an earlier attempt's restore that lands meanwhile); once the attempts
 *   are spent, surfaced (the same restore works a moment later) — OUTCOME_UNKNOWN if one may have landed (above);
 * - after an attempt that may have landed, an object holding the backup's version (version ids are the vault's,
 *   random, and a restore keeps them) is that restore, and its latest version is the answer; without a version to
 *   compare, or when the object does not hold it, it cannot be told: OUTCOME_UNKNOWN, never CONFLICT;
 * - nothing live, the name soft-deleted: DELETED_BUT_RECOVERABLE, what the name is now (a delete completed after the
 *   409, or — Azure's answer being unverified — a restore over the soft-deleted name answered so);
 * - otherwise (the name is live, or cannot be read: forbidden, or no name known) CONFLICT, as answered.
 */
function restoreAttempts<T>(r: ConfirmedRestore<T>): ConfirmingAttempts<T> {
  const { operation, kind, expected } = r;
  const codeOf = (e: unknown, name: string | undefined) => toKeyVaultError(e, { operation, secretName: name }).code;
  const unknown = (conflict: unknown, detail: string) => outcomeUnknown(operation, conflict, detail, expected?.name);
  /**
   * Nothing live, nothing deleted: a delete, a purge or a recover is completing, which read alike (404 both). A recover
   * this provider runs is OBJECT_BEING_RECOVERED, as the vault's 409 ObjectIsBeingRecovered is; any other is
   * OBJECT_BEING_DELETED, its message naming all three.
   */
  const inTransition = (conflict: unknown, name: string, seen = `no ${kind} of that name, live or deleted`) => {
    const detail = `HTTP 409 Conflict, and ${seen}`;
    const [code, facts] = r.recovering(name)
      ? [KeyVaultErrorCode.OBJECT_BEING_RECOVERED, { detail: `${detail}, while this provider recovers it` }]
      : [KeyVaultErrorCode.OBJECT_BEING_DELETED, { detail, hint: 'a delete, purge or recover of the name is still completing' }];
    return new KeyVaultError(code, keyVaultMessage(operation, code, facts), { operation, secretName: name, statusCode: 409, azureCode: 'Conflict', cause: conflict });
  };
  /** Reads `read`; a 404 is `false`, a 403 of a disabled object (a secret's value) is `true` (it exists), other refusals `undefined`. */
  const found = async <R>(name: string, read: () => Promise<R>): Promise<{ exists: boolean | undefined; value?: R }> => {
    try {
      return { exists: true, value: await read() };
    } catch (e) {
      const code = codeOf(e, name);
      if (code === KeyVaultErrorCode.KEY_NOT_FOUND) return { exists: false };
      if (code === KeyVaultErrorCode.DISABLED) return { exists: true };
      if (code === KeyVaultErrorCode.FORBIDDEN) return { exists: undefined };
      throw e;
    }
  };
  /**
   * The name's latest version, read: `exists` false when nothing is live and nothing soft-deleted (a purge still
   * completing). A read that fails otherwise tells nothing (undefined: the 409 stands), so a read's transient failure
   * never makes the refused restore count as one that may have landed.
   */
  const probe = async (name: string, signal: AbortSignal): Promise<{ exists: boolean | undefined; value?: T; softDeleted?: true }> => {
    const tell = <R>(read: () => Promise<R>) => found(name, read).catch(() => ({ exists: undefined }) as { exists: boolean | undefined; value?: R });
    const latest = await tell(() => r.read(name, undefined, signal));
    if (latest.exists !== false) return latest;
    const deleted = await tell(() => r.readDeleted(name, signal));
    return deleted.exists === true ? { exists: undefined, softDeleted: true } : { exists: deleted.exists === false ? false : undefined };
  };
  /**
   * Nothing live, the name soft-deleted: what the caller acts on (recover or purge it), whatever the 409 met — on the
   * emulator a delete completing since (it answers a restore over a soft-deleted name with its own code); on Azure,
   * whose answer to that restore is unverified, possibly the restore over the soft-deleted name itself (README).
   */
  const softDeleted = (conflict: unknown, name: string) =>
    new KeyVaultError(KeyVaultErrorCode.DELETED_BUT_RECOVERABLE, keyVaultMessage(operation, KeyVaultErrorCode.DELETED_BUT_RECOVERABLE, {}), {
      operation,
      secretName: name,
      statusCode: 409,
      azureCode: 'Conflict',
      cause: conflict,
    });
  const readBack = async (name: string, version: string | undefined, conflict: unknown, signal: AbortSignal): Promise<T> => {
    const { exists, value } = await found(name, () => r.read(name, version, signal));
    if (exists === true && value !== undefined) return value;
    const what = version === undefined ? 'its latest version could not be read' : `the ${kind} of that name does not show the backup's version`;
    throw unknown(conflict, `an earlier attempt may have restored it (the retry found the ${kind}), and ${what}`);
  };
  return confirmBeforeResend(operation, expected?.name, async ({ signal }, earlierMayHaveLanded) => {
    try {
      return await r.restore(signal);
    } catch (e) {
      const name = restoreConflictName(e) ?? expected?.name;
      // The vault's answer for a soft-deleted name while this provider's own recover has not been applied yet: the
      // recover ends that state, as below.
      const code = codeOf(e, name);
      if (name !== undefined && code === KeyVaultErrorCode.DELETED_BUT_RECOVERABLE && r.recovering(name)) {
        throw inTransition(e, name, 'the name is soft-deleted');
      }
      // Another answer keeps its code, with the name it quotes (a soft-deleted name's) when no `expected` gives it.
      if (code !== KeyVaultErrorCode.CONFLICT) throw name === expected?.name ? e : toKeyVaultError(e, { operation, secretName: name });
      const latest = name === undefined ? { exists: undefined } : await probe(name, signal);
      // The name free: this attempt did not land, nor did any earlier one that has finished at the vault (its object
      // would be there) — but one cut off while still in flight may land yet: retried (a later read-back finds it);
      // spent, `confirmedRestore` answers OUTCOME_UNKNOWN.
      if (latest.exists === false) throw inTransition(e, name as string);
      // Soft-deleted while this provider's own recover runs: the recover ends it (retried, as the free name is).
      if (latest.softDeleted) throw r.recovering(name as string) ? inTransition(e, name as string, 'the name is soft-deleted') : softDeleted(e, name as string);
      if (!earlierMayHaveLanded) throw toKeyVaultError(e, { operation, secretName: name });
      if (expected === undefined) throw unknown(e, `an earlier attempt may have restored it (the retry found the ${kind}), and no version of the backup was given to check`);
      await readBack(expected.name, expected.version, e, signal);
      r.logger.warn(`Key Vault ${operation}: an earlier attempt's answer was lost; the ${kind} read back holds the backup's version, so it is the result`);
      // The latest version read above is the answer (the backup's name: the answer's, or `expected`'s when it quotes none).
      if (latest.value !== undefined && name?.toLowerCase() === expected.name.toLowerCase()) return latest.value;
      return readBack(expected.name, undefined, e, signal);
    }
  });
}
