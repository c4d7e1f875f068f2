/**
 * Integration: LockLeases on real SQLite and PostgreSQL — the compare-and-set a refresh relies on when
 * the advisory lock it held was lost with its session: one holder at a time, until it ends it or it expires.
 */
import { InsertQueryBuilder, type DataSource } from 'typeorm';
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from '@app/testing';
import { openTestDataSource } from '../testing/persistence-test-db';
import { LockLeaseEntity } from './lock-lease.entity';
import { LockLeases } from './lock-leases';

describe.each(DATABASE_KINDS)('LockLeases (%s)', (kind) => {
  let db: TestDatabase;
  let ds: DataSource;
  let other: DataSource;
  let leases: LockLeases;
  let seq = 0;
  const t0 = new Date('2030-01-01T00:00:00Z');
  const at = (ms: number) => new Date(t0.getTime() + ms);

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    ds = await openTestDataSource(db.options);
    // A second replica on PostgreSQL: its own DataSource. A SQLite host is one process: its callers share one.
    other = kind === 'postgres' ? await openTestDataSource(db.options) : ds;
    leases = LockLeases.for(ds);
  });

  afterAll(async () => {
    if (other !== ds) await other?.destroy();
    await ds?.destroy();
    await db?.drop();
  });

  const name = () => `oauth-refresh:["t","idp","conn-${++seq}"]`;

  it('one holder at a time: a second claimer (another replica) is refused with the holder and its expiry until it expires', async () => {
    const n = name();
    expect(await leases.claim(n, 'holder-a', at(60_000), t0)).toEqual({ claimed: true, expiresAt: at(60_000) });
    expect(await LockLeases.for(other).claim(n, 'holder-b', at(70_000), at(59_999))).toEqual({ claimed: false, holder: 'holder-a', expiresAt: at(60_000) });
    // Expired: the next claimer takes it over; the old holder is refused now.
    expect(await LockLeases.for(other).claim(n, 'holder-b', at(120_000), at(60_000))).toEqual({ claimed: true, expiresAt: at(120_000) });
    expect(await leases.claim(n, 'holder-a', at(130_000), at(61_000))).toEqual({ claimed: false, holder: 'holder-b', expiresAt: at(120_000) });
  });

  it('concurrent claimers of a free lease: exactly one wins', async () => {
    const n = name();
    const claims = await Promise.all(
      Array.from({ length: 8 }, (_, i) => LockLeases.for(i % 2 ? other : ds).claim(n, `holder-${i}`, at(60_000), t0)),
    );
    expect(claims.filter((c) => c.claimed)).toHaveLength(1);
  });

  it('release ends only its own lease: a holder whose lease expired and was taken over does not end the new one', async () => {
    const n = name();
    await leases.claim(n, 'holder-a', at(1000), t0);
    await leases.claim(n, 'holder-b', at(60_000), at(1000));
    await leases.release(n, 'holder-a');
    expect(await leases.claim(n, 'holder-c', at(70_000), at(2000))).toMatchObject({ claimed: false, holder: 'holder-b' });
    await leases.release(n, 'holder-b');
    expect(await leases.claim(n, 'holder-c', at(70_000), at(2000))).toEqual({ claimed: true, expiresAt: at(70_000) });
  });

  it('clear ends a lease whoever holds it, and only that one', async () => {
    const n = name();
    const kept = name();
    await leases.claim(n, 'holder-a', at(60_000), t0);
    await leases.claim(kept, 'holder-a', at(60_000), t0);
    await leases.clear(n);
    expect(await leases.claim(n, 'holder-b', at(60_000), t0)).toEqual({ claimed: true, expiresAt: at(60_000) });
    expect(await leases.claim(kept, 'holder-b', at(60_000), t0)).toMatchObject({ claimed: false, holder: 'holder-a' });
  });

  it('a name longer than the column is kept hashed, still one lease per name', async () => {
    const long = `oauth-refresh:${'x'.repeat(400)}`;
    expect((await leases.claim(long, 'holder-a', at(60_000), t0)).claimed).toBe(true);
    expect(await leases.claim(long, 'holder-b', at(60_000), t0)).toMatchObject({ claimed: false, holder: 'holder-a' });
    expect((await leases.claim(`${long}y`, 'holder-b', at(60_000), t0)).claimed).toBe(true);
  });

  it("a lease cleared between the claim's insert (ignored: it was held) and its read is free: the claim takes it, no untyped error", async () => {
    const n = name();
    await leases.claim(n, 'holder-a', at(60_000), t0);
    // Forces the ordering: the holder's lease ends (another replica's clear, committed) right after the claim's INSERT-or-ignore.
    const insert = InsertQueryBuilder.prototype.execute;
    let cleared = false;
    const spy = jest.spyOn(InsertQueryBuilder.prototype, 'execute').mockImplementation(async function (this: InsertQueryBuilder<object>) {
      const result = await insert.call(this);
      if (!cleared) {
        cleared = true;
        await other.getRepository(LockLeaseEntity).delete({ name: n });
      }
      return result;
    });
    try {
      expect(await leases.claim(n, 'holder-b', at(70_000), at(1000))).toEqual({ claimed: true, expiresAt: at(70_000) });
    } finally {
      spy.mockRestore();
    }
    expect(cleared).toBe(true);
    expect(await leases.claim(n, 'holder-a', at(80_000), at(2000))).toMatchObject({ claimed: false, holder: 'holder-b' });
  });

  it('a lease ended after every INSERT of a claim: taken once the claim inserts its own row, else reported busy (LOCK_TIMEOUT), never an untyped error', async () => {
    const n = name();
    await leases.claim(n, 'holder-a', at(60_000), t0);
    const insert = InsertQueryBuilder.prototype.execute;
    // Every INSERT is followed by an end of the lease (a pathological churn of claims and clears).
    const spy = jest.spyOn(InsertQueryBuilder.prototype, 'execute').mockImplementation(async function (this: InsertQueryBuilder<object>) {
      const result = await insert.call(this);
      await other.getRepository(LockLeaseEntity).delete({ name: n });
      return result;
    });
    try {
      const claim = leases.claim(n, 'holder-b', at(70_000), at(1000));
      // On PostgreSQL the retry's INSERT is the claim's own row, which another session cannot delete before it commits:
      // the claim holds. On SQLite's one connection the delete lands inside the claim every time: it gives up, typed.
      if (kind === 'postgres') expect(await claim).toEqual({ claimed: true, expiresAt: at(70_000) });
      else await expect(claim).rejects.toMatchObject({ code: 9001, codeName: 'LOCK_TIMEOUT' });
    } finally {
      spy.mockRestore();
    }
  });
});
