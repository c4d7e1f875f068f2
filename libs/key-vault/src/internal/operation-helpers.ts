import { setTimeout as sleep } from 'node:timers/promises';
import { KeyVaultErrorCode } from '../errors/key-vault-error-code';
import { KeyVaultError, isKeyVaultError, type KeyVaultOperation } from '../errors/key-vault.error';
import { keyVaultMessage } from '../errors/key-vault-message';
import { toKeyVaultError } from '../errors/map-key-vault-error';

const isNotFound = (e: unknown, operation: KeyVaultOperation) => isKeyVaultError(toKeyVaultError(e, { operation }), KeyVaultErrorCode.KEY_NOT_FOUND);

/**
 * A soft delete (secret or key) that stays correct when retried: an earlier attempt's DELETE may have
 * landed before its answer was lost, so a retry's 404 is confirmed with the deleted-object record.
 */
export async function deleteConfirmingRetries<T>(operation: KeyVaultOperation, attempt: number, remove: () => Promise<T>, readDeleted: () => Promise<T>): Promise<T> {
  try {
    return await remove();
  } catch (e) {
    if (attempt > 0 && isNotFound(e, operation)) {
      try {
        return await readDeleted();
      } catch {
        throw e;
      }
    }
    throw e;
  }
}

/** What a soft delete's wait needs of the SDK's delete poller (`beginDeleteSecret` / `beginDeleteKey`). */
export interface DeletePoller<T> {
  isDone(): boolean;
  poll(options?: { abortSignal?: AbortSignal }): Promise<void>;
  getResult(): T | undefined;
}

/**
 * The wait of a soft delete the vault has taken — the SDK's `pollUntilDone` (a read of the deleted object every
 * `intervalMs` until it shows) — except that the object seen live again meanwhile ends it with DELETE_UNDONE: another
 * client recovered it (or purged and wrote it anew) between the delete and a poll. Its deleted object then answers 404
 * for ever: the SDK's poller would wait to the attempt's timeout (a breaker failure), retried to the last attempt.
 * Live is a version listed by `versions` (`listPropertiesOfSecretVersions` / `listPropertiesOfKeyVersions`: properties
 * only, one item); a listing that fails is taken as "not seen live" (the wait goes on, as the SDK's would). It runs
 * during the pause, not before it: the deleted object is read every `intervalMs` as the SDK reads it, however long
 * the listing takes (up to the pause), and an object seen live ends the pause at once.
 */
export async function untilDeleted<T>(
  operation: 'deleteSecret' | 'deleteKey',
  name: string,
  poller: DeletePoller<T>,
  wait: { intervalMs: number; signal: AbortSignal; versions: () => VersionList },
): Promise<T> {
  for (;;) {
    if (poller.isDone()) return poller.getResult() as T;
    const seenLive = new AbortController();
    const live = listsAnyVersion(wait.versions).then(
      (yes) => {
        if (yes) seenLive.abort();
        return yes;
      },
      () => false,
    );
    try {
      await sleep(wait.intervalMs, undefined, { signal: AbortSignal.any([wait.signal, seenLive.signal]) });
    } catch (e) {
      if (wait.signal.aborted || !seenLive.signal.aborted) throw e;
    }
    if (await live) {
      throw new KeyVaultError(KeyVaultErrorCode.DELETE_UNDONE, keyVaultMessage(operation, KeyVaultErrorCode.DELETE_UNDONE), { operation, secretName: name });
    }
    await poller.poll({ abortSignal: wait.signal });
  }
}

/** The SDK's paged list of an object's versions, as `untilDeleted` reads it. */
type VersionList = { byPage(settings: { maxPageSize: number }): AsyncIterableIterator<unknown[]> };

/**
 * Whether the object is live: a version of it listed (a disabled one counts). A name with nothing live lists none (or
 * 404), one whose deletion is still completing included (the emulator; Azure's answer there is unverified: README).
 */
async function listsAnyVersion(versions: () => VersionList): Promise<boolean> {
  for await (const page of versions().byPage({ maxPageSize: 1 })) {
    if (page.length > 0) return true;
  }
  return false;
}

/** A purge that stays correct when retried: a retry's 404 means the earlier attempt purged it and its answer was lost. */
export async function purgeToleratingRetries(operation: KeyVaultOperation, attempt: number, purge: () => Promise<void>): Promise<void> {
  try {
    await purge();
  } catch (e) {
    if (attempt > 0 && isNotFound(e, operation)) return;
    throw e;
  }
}

/**
 * The SDK's recover pollers read the object first and stop there, without sending the recover, when it is live:
 * a recover of a live object would answer as done though nothing was deleted. On a first attempt that is
 * KEY_NOT_FOUND, as the vault answers a recover of a name with no deleted object; a retry finding the object
 * live is an earlier attempt's recover whose answer was lost, and done.
 */
export function assertRecoverSent(operation: 'recoverDeletedSecret' | 'recoverDeletedKey', attempt: number, poller: { getOperationState(): { isStarted?: boolean } }, name: string): void {
  if (attempt > 0 || poller.getOperationState().isStarted) return;
  const detail = `the ${operation === 'recoverDeletedKey' ? 'key' : 'secret'} is not deleted`;
  throw new KeyVaultError(KeyVaultErrorCode.KEY_NOT_FOUND, keyVaultMessage(operation, KeyVaultErrorCode.KEY_NOT_FOUND, { detail }), { operation, secretName: name });
}

/** A backup answer must carry a blob: an empty one is a failed backup, never an empty object. */
export function nonEmptyBackup(blob: Uint8Array | undefined, operation: 'backupSecret' | 'backupKey', name: string): Uint8Array {
  if (blob && blob.length > 0) return blob;
  throw new KeyVaultError(KeyVaultErrorCode.BACKUP_FAILED, keyVaultMessage(operation, KeyVaultErrorCode.BACKUP_FAILED, { detail: 'empty backup' }), {
    operation,
    secretName: name,
  });
}

/**
 * Names whose recover this provider is running (an attempt in flight; lower-cased, as the vault compares names).
 * A restore's 409 over a name with nothing live and nothing deleted reads the same during a delete, a purge or a
 * recover; this tells the one recover the process knows of.
 */
export class NamesInFlight {
  private readonly counts = new Map<string, number>();

  has(name: string): boolean {
    return this.counts.has(name.toLowerCase());
  }

  async during<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const key = name.toLowerCase();
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    try {
      return await fn();
    } finally {
      const left = (this.counts.get(key) ?? 1) - 1;
      if (left > 0) this.counts.set(key, left);
      else this.counts.delete(key);
    }
  }
}
