import type { LoggerService } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeyVaultErrorCode, type KeyVaultError, isKeyVaultError } from '@app/key-vault';

/**
 * What a vault in an outage answers a call: the breaker open (CIRCUIT_OPEN: the vault client's breaker opened after a
 * few failures in a row, counted across every concurrent call). A 5xx, a lost connection or a timeout once the client's
 * own retries are spent is that call's failure, reported with its connection: one secret the vault keeps failing while
 * it answers the others must not hold up, then stop, the whole run (and every run after it); a vault that fails every
 * call opens the breaker within a few of them.
 */
const OUTAGE_CODE = KeyVaultErrorCode.CIRCUIT_OPEN;

/** A failure that says when to try again carries it (CIRCUIT_OPEN: when the breaker lets a trial through); else this. */
const DEFAULT_WAIT_MS = 1000;

/**
 * A run's view of the vault's outages. A call that fails as in an outage is retried once the vault may answer again —
 * after the open breaker's `retryAfterMs` (when it lets a trial call through: the one call the vault sees, the others
 * wait for its outcome in the client), else a second — and meanwhile no new group starts (`paused`). The outage ends
 * at the first call that succeeds. One that lasts longer than `maxMs` — counted from the first failure of the outage or
 * of the call, whichever is earlier — is `expired`: every call that meets it gives up, and the run stops
 * (MIGRATION_VAULT_UNAVAILABLE). Elapsed time, not the time of day: timers, not the Clock (as the limiter).
 */
export class VaultOutage {
  /** When the current outage began (its first failure); undefined while the vault answers. */
  private since?: number;
  /** New groups (and, through the limiter, new vault calls) wait until then. */
  private until = 0;
  /** The failure that outlasted `maxMs`: the run stops with it. */
  expired?: KeyVaultError;

  constructor(
    private readonly maxMs: number,
    private readonly logger: Pick<LoggerService, 'warn' | 'log'>,
  ) {}

  /** A failure a vault in an outage answers (see OUTAGE_CODE). */
  static isOutage(e: unknown): e is KeyVaultError {
    return isKeyVaultError(e, OUTAGE_CODE);
  }

  /** A report entry's code is such a failure's. */
  static isOutageCode(codeName: string): boolean {
    return codeName === KeyVaultErrorCode[OUTAGE_CODE];
  }

  /** A vault call of the run succeeded: the vault answers, the outage (if any) is over. */
  answered(): void {
    if (this.since === undefined) return;
    this.logger.log(`the vault answers again after ${Date.now() - this.since} ms: the migration goes on`);
    this.since = undefined;
  }

  /**
   * A vault call failed with `e` (an outage failure: `isOutage`); `callSince`: its own first such failure. How long to
   * wait before retrying it (ms) — or undefined once the outage has lasted `maxMs`: then it is `expired`, and the call
   * gives up with its failure.
   */
  failed(e: KeyVaultError, callSince: number): number | undefined {
    if (this.expired) return undefined;
    const now = Date.now();
    if (this.since === undefined) {
      this.since = now;
      this.logger.warn(`the vault is unavailable (${e.codeName}): the migration waits for it, at most ${this.maxMs} ms (maxVaultOutageMs); no new group starts meanwhile`);
    }
    const left = Math.min(this.since, callSince) + this.maxMs - now;
    if (left <= 0) {
      this.expired = e;
      return undefined;
    }
    const wait = Math.min(left, Math.max(1, e.retryAfterMs ?? DEFAULT_WAIT_MS));
    this.until = Math.max(this.until, now + wait);
    return wait;
  }

  /** The maximum, for the error the run stops with. */
  get maxOutageMs(): number {
    return this.maxMs;
  }

  /**
   * Waits while an outage holds new groups back (until the breaker lets a trial through), or until `signal` aborts.
   * True when it waited: what the caller checked before may have changed.
   */
  async paused(signal?: AbortSignal): Promise<boolean> {
    const ms = this.until - Date.now();
    if (ms <= 0 || this.expired || signal?.aborted) return false;
    await sleep(ms, undefined, { signal }).catch(() => undefined);
    return true;
  }
}
