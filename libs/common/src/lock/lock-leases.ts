import { createHash } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { TransactionRunner } from '../persistence/transaction-runner';
import { LockLeaseEntity } from './lock-lease.entity';
import { LockTimeoutError } from './lock.errors';

/** Rounds of a claim (update, insert-or-ignore, read) before a lease that keeps vanishing is reported busy. */
const CLAIM_ATTEMPTS = 3;

/** What `LockLeases.claim` found: the lease is ours now, or another holder's until `expiresAt`. */
export type LeaseClaim = { claimed: true; expiresAt: Date } | { claimed: false; holder: string; expiresAt: Date };

/**
 * Durable leases in `cv_lock_leases`, shared by every replica of a DataSource: "work `name` is in
 * progress by `holder` until `expiresAt`". A compare-and-set in the database, so it outlives what an
 * advisory lock does not — the lock's session (a lost connection, `pg_terminate_backend`): a replica
 * that gets the lock after such a loss still sees the lease. A lease nobody releases (its holder crashed)
 * ends at its expiry by itself. Times are the callers' clocks: replicas' clocks must agree within the
 * margin the caller adds. Names longer than the column are stored hashed; no value is ever stored.
 * Through a TransactionRunner: on SQLite's one connection a bare query could land inside another
 * caller's open transaction.
 */
export class LockLeases {
  private static readonly leases = new WeakMap<DataSource, LockLeases>();

  static for(dataSource: DataSource): LockLeases {
    let leases = LockLeases.leases.get(dataSource);
    if (!leases) LockLeases.leases.set(dataSource, (leases = new LockLeases(new TransactionRunner(dataSource))));
    return leases;
  }

  private constructor(private readonly runner: TransactionRunner) {}

  /**
   * Takes lease `name` for `holder` until `expiresAt` — only if nobody holds it, or its lease expired by `now`
   * (a holder claiming again extends its own). Otherwise reports the current holder and its expiry. A lease ended
   * (clear, release) during the claim is free and claimed; LockTimeoutError only if it vanished on every attempt.
   */
  async claim(name: string, holder: string, expiresAt: Date, now: Date): Promise<LeaseClaim> {
    const key = leaseKey(name);
    const row = await this.runner.run(async () => {
      const repo = this.runner.manager.getRepository(LockLeaseEntity);
      for (let attempt = 1; ; attempt++) {
        await repo
          .createQueryBuilder()
          .update()
          .set({ holder, expiresAt })
          .where('name = :key AND (expires_at <= :now OR holder = :holder)', { key, now: now.getTime(), holder })
          .execute();
        await repo.createQueryBuilder().insert().values({ name: key, holder, expiresAt }).orIgnore().execute();
        const found = await repo.findOne({ where: { name: key } });
        if (found) return found;
        // A clear or release committed between the INSERT (ignored: the lease was held) and the read: it is free now,
        // claimed again. Only an end after every attempt (leases ended as fast as claimed) gives up, as a busy lock.
        if (attempt === CLAIM_ATTEMPTS) throw new LockTimeoutError(name, 0);
      }
    });
    return row.holder === holder ? { claimed: true, expiresAt: row.expiresAt } : { claimed: false, holder: row.holder, expiresAt: row.expiresAt };
  }

  /** Ends lease `name` whoever holds it: for when what it guards is gone (its holder's work can no longer matter). */
  async clear(name: string): Promise<void> {
    await this.runner.run(() => this.runner.manager.getRepository(LockLeaseEntity).delete({ name: leaseKey(name) }));
  }

  /** Ends `holder`'s lease `name`; a lease another holder took meanwhile (after ours expired) is left alone. */
  async release(name: string, holder: string): Promise<void> {
    await this.runner.run(() => this.runner.manager.getRepository(LockLeaseEntity).delete({ name: leaseKey(name), holder }));
  }
}

/** The stored name: as given when it fits the column, else its SHA-256 (a name is not secret, only possibly long). */
function leaseKey(name: string): string {
  return name.length <= 255 ? name : `sha256:${createHash('sha256').update(name, 'utf8').digest('hex')}`;
}
