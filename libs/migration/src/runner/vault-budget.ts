import {
  callerLeftError,
  isKeyVaultError,
  KeyVaultErrorCode,
  type KeyVaultOperation,
} from '@app/key-vault';
import type { ResolvedMigrationOptions } from '../migration.options';
import type { AimdLimiter } from './aimd-limiter';
import { VaultOutage } from './vault-outage';

/** What a run's vault calls go through (`withVaultBudget`): its throttle-aware limit and its watch on vault outages. */
export interface VaultBudget {
  limiter: AimdLimiter;
  outage: VaultOutage;
}

/**
 * Runs one vault-touching call under the AIMD limit (value writes run inside `storeMany`, before
 * its failure audit). A 429 that reaches it (a client whose `maxDelayMs` is below the Retry-After
 * gives up at once) cuts the limit, waits its Retry-After and is retried, never reported. A client
 * that retries 429s itself hides them: a call `concurrency.slowCallMs` slower than usual counts as
 * throttled (0: off). (A cold client's first request going alone is the vault client's own policy.)
 * A vault in an outage (`VaultOutage`: the breaker open) is waited out the
 * same way, without a cut: every new start waits until the breaker lets a trial through, then the call is retried —
 * nothing of it was committed (a value write is committed with its group, after this returns), so neither the
 * store's audit nor the checkpoints see it. Past `maxVaultOutageMs` the call fails with what it met, and the run stops.
 * `cancel.signal` (the run's) aborting ends a wait for the limit at once — a throttled vault's Retry-After or an outage
 * included — with CANCELLED, as the vault client drops a call not sent (`operation` names it); none: the call waits its turn.
 */
export async function withVaultBudget<T>(
  { limiter, outage }: VaultBudget,
  options: Pick<ResolvedMigrationOptions, 'concurrency' | 'maxThrottleRetries'>,
  call: () => Promise<T>,
  cancel?: { signal?: AbortSignal; operation: KeyVaultOperation },
): Promise<T> {
  const left = () => callerLeftError(cancel!.operation, 'not_sent');
  let throttles = 0;
  /** The first outage failure of this call, and its latest. */
  let outageSince: number | undefined;
  let met: unknown;
  for (;;) {
    const permit = await limiter.acquire(
      cancel && { signal: cancel.signal, left },
    );
    // The outage outlasted the bound while this call waited to try again: it gives up with what it met.
    if (met !== undefined && outage.expired) {
      limiter.release();
      throw met;
    }
    const started = Date.now();
    try {
      const r = await call();
      outage.answered();
      const took = Date.now() - started;
      const slowCallMs = options.concurrency.slowCallMs;
      if (slowCallMs > 0 && limiter.slowAsThrottled(took, slowCallMs))
        limiter.throttled(permit, 0);
      else limiter.success(permit, took);
      return r;
    } catch (e) {
      if (
        isKeyVaultError(e, KeyVaultErrorCode.RATE_LIMITED) &&
        throttles++ < options.maxThrottleRetries
      ) {
        limiter.throttled(permit, e.retryAfterMs);
        continue;
      }
      const wait = VaultOutage.isOutage(e)
        ? outage.failed(e, (outageSince ??= Date.now()))
        : undefined;
      if (wait !== undefined) {
        met = e;
        limiter.unavailable(wait);
        continue;
      }
      limiter.release();
      throw e;
    }
  }
}
