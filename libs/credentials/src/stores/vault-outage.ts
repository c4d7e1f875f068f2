import type { LoggerService } from '@nestjs/common';
import { OutageLog, OutboxDeferredError, OutboxEventEntity, describeError } from '@app/common';
import { isKeyVaultError, KeyVaultErrorCode } from '@app/key-vault';
import type { CredentialsPersistence } from '../persistence/credentials-persistence';

/** The vault's transient failures: it is away (no answer, 5xx, the breaker open), not refusing this work. */
const UNREACHABLE = [KeyVaultErrorCode.CIRCUIT_OPEN, KeyVaultErrorCode.SERVICE_UNAVAILABLE, KeyVaultErrorCode.TIMEOUT];

/** Whether `e` says Key Vault is unreachable now — also a write whose answer the outage lost (OUTCOME_UNKNOWN). */
export function vaultUnreachable(e: unknown): boolean {
  const transient = (x: unknown) => UNREACHABLE.some((code) => isKeyVaultError(x, code));
  return transient(e) || (isKeyVaultError(e, KeyVaultErrorCode.OUTCOME_UNKNOWN) && transient(e.cause));
}

/** Undelivered outbox events named `name` (every replica's). */
export async function undeliveredEvents(persistence: CredentialsPersistence, name: string): Promise<number> {
  const { runner } = persistence;
  return runner.read(() => runner.manager.getRepository(OutboxEventEntity).createQueryBuilder('o').where('o.deliveredAt IS NULL').andWhere('o.name = :name', { name }).getCount());
}

/** The words of an outbox handler's vault work for its outage lines. */
export interface VaultOutageWording {
  /** What waits, given how many events do (`pending`), e.g. `the vault values of 3 deleted credentials wait to be deleted`. */
  waiting: (pending: number | undefined) => string;
  /** What goes on again once the vault answers. */
  resumed: string;
}

/**
 * An outbox handler's vault work while Key Vault is unreachable: each event's attempt fails, at its backoff, for as long
 * as the outage lasts. `deferral` turns such a failure into an OutboxDeferredError (the dispatcher logs it at debug and
 * keeps the event, attempts counted, on its usual backoff: the stuck-outbox alert still sees it waiting) and says the
 * outage once with how many events wait, again each minute, and its end once (`resumed`) — where every attempt of every
 * event warned. Any other failure (403, 400) is news at each attempt: `deferral` leaves it to the caller's warning.
 */
export class VaultOutageLog {
  private readonly log: OutageLog;

  constructor(
    logger: Pick<LoggerService, 'warn' | 'log'>,
    private readonly wording: VaultOutageWording,
    private readonly pending: () => Promise<number>,
  ) {
    this.log = new OutageLog(logger);
  }

  /** The deferral to throw for `e` when the vault is unreachable (the outage logged), else undefined. */
  async deferral(e: unknown): Promise<OutboxDeferredError | undefined> {
    if (!vaultUnreachable(e)) return undefined;
    const waiting = this.log.lineDue ? this.wording.waiting(await this.pending().catch(() => undefined)) : '';
    const again = "the outbox retries them with its backoff";
    this.log.failed(
      () => `Key Vault is unreachable (${describeError(e)}): ${waiting}; ${again} (logged again each minute it lasts, and once the vault answers again)`,
      ({ forMs, failures }) => `Key Vault unreachable for ${Math.round(forMs / 1000)} s (${failedAttempts(failures)}): ${waiting}; ${again}`,
    );
    return new OutboxDeferredError('Key Vault is unreachable', { cause: e });
  }

  /** The vault did the work: the outage, if one was said, is over. */
  answered(): void {
    this.log.ended(({ forMs, failures }) => `Key Vault answers again after ${Math.round(forMs / 1000)} s (${failedAttempts(failures)}): ${this.wording.resumed}`);
  }
}

function failedAttempts(n: number): string {
  return `${n} failed attempt${n === 1 ? '' : 's'}`;
}
