import { type KeyVaultOperation } from '../errors/key-vault.error';
import { mayHaveTakenEffect, toKeyVaultError } from '../errors/map-key-vault-error';
import type { AttemptContext } from '../resilience/key-vault.resilience';

/**
 * One attempt of a write that the vault must not apply twice, told whether an earlier attempt of the same
 * call may have taken effect.
 */
export type ConfirmingAttempt<T> = (ctx: AttemptContext, earlierMayHaveLanded: boolean) => Promise<T>;

/** The attempts of one call (`KeyVaultResilience.execute`'s `fn`) and, once it is over, what they remember. */
export type ConfirmingAttempts<T> = ((ctx: AttemptContext) => Promise<T>) & {
  /** Some attempt run so far may have taken effect: its own failure did not prove otherwise. */
  readonly mayHaveLanded: boolean;
};

/**
 * The attempts of one retried write (`KeyVaultResilience.execute`'s `fn`), remembering which attempts may
 * have reached the vault without their answer reaching us: a timeout, a connection lost after sending, a
 * 5xx (`mayHaveTakenEffect`). Every later attempt is told so, and checks the vault before sending again
 * (setSecret reads its version back; a restore's 409 is resolved by reading the key). A 429, a 4xx or a
 * connection never made prove an attempt did nothing, so a retry after those alone costs no read.
 * An attempt stays "maybe landed" until its own failure proves otherwise: one cut off by the timeout, whose
 * rejection arrives late, is counted as maybe landed, never the reverse.
 */
export function confirmBeforeResend<T>(operation: KeyVaultOperation, name: string | undefined, attempt: ConfirmingAttempt<T>): ConfirmingAttempts<T> {
  const maybeLanded = new Set<number>();
  const attempts = async (ctx: AttemptContext) => {
    const earlier = maybeLanded.size > 0;
    maybeLanded.add(ctx.attempt);
    try {
      return await attempt(ctx, earlier);
    } catch (e) {
      if (!mayHaveTakenEffect(toKeyVaultError(e, { operation, secretName: name }))) maybeLanded.delete(ctx.attempt);
      throw e;
    }
  };
  return Object.defineProperty(attempts, 'mayHaveLanded', { get: () => maybeLanded.size > 0 }) as ConfirmingAttempts<T>;
}
