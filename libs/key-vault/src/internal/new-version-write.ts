import { Logger } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeyVaultErrorCode } from '../errors/key-vault-error-code';
import { KeyVaultError, isKeyVaultError, type KeyVaultOperation } from '../errors/key-vault.error';
import { keyVaultMessage } from '../errors/key-vault-message';
import { mayHaveTakenEffect } from '../errors/map-key-vault-error';
import type { AttemptContext, KeyVaultResilience } from '../resilience/key-vault.resilience';

const logger = new Logger('KeyVaultNewVersionWrite');

export interface NewVersionWrite<T> {
  operation: KeyVaultOperation;
  name: string;
  resilience: KeyVaultResilience;
  /** The object's latest version now (its own resilient read), undefined when the name does not exist; `signal` only before the write. */
  latest: (signal?: AbortSignal) => Promise<T | undefined>;
  versionOf: (object: T) => string;
  /** One attempt of the write. */
  write: (ctx: AttemptContext) => Promise<T>;
  /** The caller's: drops the write while it is not sent yet; once sent, it and its read-back run to their end. */
  signal?: AbortSignal;
}

/**
 * A write that adds a version each time it runs (Create Key — which on an existing name makes a new
 * version —, Rotate Key) must not be retried after a lost answer: the first request may have taken effect
 * (or still be running in the vault), and a second would leave two versions, the caller holding one that
 * may not be the latest. So the write is retried only after failures that prove it did not happen; after
 * any other, the object is read back until `timeoutMs` more has passed: a latest version other than the
 * one before the write is its result. Without one, an answered failure (5xx) stands, and a missing answer
 * is OUTCOME_UNKNOWN — never reported as a failure that may in fact have succeeded.
 */
export async function writeNewVersion<T>(w: NewVersionWrite<T>): Promise<T> {
  const before = await w.latest(w.signal);
  const beforeVersion = before === undefined ? undefined : w.versionOf(before);
  try {
    return await w.resilience.execute(w.operation, w.name, w.write, { idempotent: false, signal: w.signal });
  } catch (e) {
    if (!mayHaveTakenEffect(e)) throw e;
    const failure = e as KeyVaultError;
    const answered = failure.statusCode !== undefined;
    const deadline = Date.now() + (answered ? 0 : w.resilience.options.timeoutMs);
    let readBack = false;
    for (;;) {
      const now = await w.latest().catch(() => null);
      if (now !== null) readBack = true;
      if (now && w.versionOf(now) !== beforeVersion) {
        logger.warn(`Key Vault ${w.operation}: the answer was lost (${failure.codeName}); the new version was found by reading the object back`);
        return now;
      }
      if (Date.now() >= deadline) break;
      await sleep(w.resilience.options.pollIntervalMs);
    }
    // The vault answered and no new version exists: it did not take effect.
    if (answered && readBack) throw failure;
    throw new KeyVaultError(
      KeyVaultErrorCode.OUTCOME_UNKNOWN,
      keyVaultMessage(w.operation, KeyVaultErrorCode.OUTCOME_UNKNOWN, { detail: `${failure.codeName}, and no new version found by reading back` }),
      { operation: w.operation, secretName: w.name, cause: failure },
    );
  }
}

/** A read whose 404 means "no such object yet". */
export function absentWhenNotFound<T>(read: Promise<T>): Promise<T | undefined> {
  return read.catch((e: unknown) => {
    if (isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND)) return undefined;
    throw e;
  });
}
