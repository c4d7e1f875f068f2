/**
 * Integration: a held advisory lock's session is checked while its holder works (PostgreSQL). A session whose path
 * stalls says nothing (no error, no end) until TCP keepalive gives up; the heartbeat tells the holder within its
 * interval plus its deadline. A healthy session is checked and unlocked as before, never while a check is in flight.
 */
import { randomBytes } from 'node:crypto';
import { createTestDatabase, startStallProxy, TestDatabase } from '@app/testing';
import type { Logger } from '@nestjs/common';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { LockLostError } from './lock.errors';
import type { LockSession, LockSessions } from './lock-sessions';
import { PostgresAdvisoryLock } from './postgres-advisory-lock';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const key = (name: string) => `${name}-${randomBytes(6).toString('hex')}`;
const HEARTBEAT = { intervalMs: 300, timeoutMs: 200 };

/** What the lock's next session is asked, in order, with when each heartbeat answered; `delayHeartbeatMs` slows their answers. */
function recordQueries(lock: PostgresAdvisoryLock, delayHeartbeatMs = 0): string[] {
  const seen: string[] = [];
  const sessions = (lock as unknown as { sessions: LockSessions }).sessions;
  const connect = sessions.connect.bind(sessions);
  jest.spyOn(sessions, 'connect').mockImplementationOnce(async (waitMs) => {
    const session = await connect(waitMs);
    const query = session.query.bind(session);
    session.query = (async (sql: string, params?: unknown[]) => {
      const heartbeat = sql === 'SELECT 1';
      seen.push(heartbeat ? 'heartbeat' : sql.includes('pg_advisory_unlock') ? 'unlock' : 'other');
      if (heartbeat) await sleep(delayHeartbeatMs);
      const result = await query(sql, params);
      if (heartbeat) seen.push('heartbeat answered');
      return result;
    }) as LockSession['query'];
    return session;
  });
  return seen;
}

describe('Advisory-lock heartbeat (PostgreSQL)', () => {
  let db: TestDatabase;
  let direct: DataSource;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    direct = await new DataSource({ ...db.options } as DataSourceOptions).initialize();
  });
  afterAll(async () => {
    await direct?.destroy();
    await db?.drop();
  });

  it("a holder whose lock session's path stalls is told within the heartbeat's interval plus deadline; the session is ended and another replica takes the lock", async () => {
    const proxy = await startStallProxy((db.options as { url: string }).url);
    // No query deadline on these connections: only the heartbeat can notice the stall.
    const stalling = await new DataSource({ ...db.options, url: proxy.url } as DataSourceOptions).initialize();
    try {
      const lock = new PostgresAdvisoryLock(stalling, undefined, { heartbeat: HEARTBEAT });
      const warned = jest.spyOn((lock as unknown as { logger: Logger }).logger, 'warn').mockImplementation(() => undefined);
      const k = key('stalled');
      let stalledAt = 0;
      let toldAfterMs: number | undefined;
      let outcome: unknown;
      const entered = new Promise<void>((resolve) => {
        void lock
          .tryRun(k, async (held) => {
            resolve();
            // The job works on, checking its signal; a bound keeps a job that is never told from hanging the test.
            for (const until = Date.now() + 5000; !held.aborted && Date.now() < until; ) await sleep(10);
            toldAfterMs = held.aborted ? Date.now() - stalledAt : undefined;
            held.throwIfAborted();
            return 'went on unlocked';
          })
          .then(
            (r) => (outcome = r),
            (e: unknown) => (outcome = e),
          );
      });
      await entered;
      await sleep(HEARTBEAT.intervalMs); // a heartbeat or two went through before the stall
      stalledAt = Date.now();
      proxy.stall();
      for (let i = 0; i < 600 && outcome === undefined; i++) await sleep(10);
      expect(outcome).toBeInstanceOf(LockLostError);
      expect(outcome).toMatchObject({ codeName: 'LOCK_LOST', key: k });
      // Within one interval plus the deadline, with a margin for a loaded machine.
      expect(toldAfterMs).toBeLessThanOrEqual(HEARTBEAT.intervalMs + HEARTBEAT.timeoutMs + 1000);
      expect(warned.mock.calls.map((c) => String(c[0]))).toEqual([expect.stringMatching(new RegExp(`"${k}".*stopped answering`))]);
      // The session was released with its error: LockSessions ends its backend once PostgreSQL answers, freeing the lock.
      proxy.passNew();
      const other = new PostgresAdvisoryLock(direct);
      let acquired = false;
      for (const until = Date.now() + 20_000; !acquired && Date.now() < until; ) {
        acquired = (await other.tryRun(k, async () => undefined)).acquired;
        if (!acquired) await sleep(200);
      }
      expect(acquired).toBe(true);
    } finally {
      proxy.resume();
      await stalling.destroy();
      await proxy.close();
    }
  }, 40_000);

  it('a healthy session is checked every interval while a long fn runs, which is not aborted, and is unlocked after the last check', async () => {
    const lock = new PostgresAdvisoryLock(direct, undefined, { heartbeat: HEARTBEAT });
    const warned = jest.spyOn((lock as unknown as { logger: Logger }).logger, 'warn');
    const seen = recordQueries(lock);
    const k = key('healthy');
    let aborted = false;
    await expect(
      lock.tryRun(k, async (held) => {
        held.addEventListener('abort', () => (aborted = true));
        await sleep(HEARTBEAT.intervalMs * 4 + 100);
        return 'done';
      }),
    ).resolves.toEqual({ acquired: true, value: 'done' });
    expect(aborted).toBe(false);
    expect(warned).not.toHaveBeenCalled();
    expect(seen.filter((q) => q === 'heartbeat answered').length).toBeGreaterThanOrEqual(3);
    expect(seen.at(-1)).toBe('unlock');
    await expect(new PostgresAdvisoryLock(direct).tryRun(k, async () => 'free')).resolves.toEqual({ acquired: true, value: 'free' });
    // No heartbeat outlives fn.
    const after = seen.length;
    await sleep(HEARTBEAT.intervalMs * 2);
    expect(seen).toHaveLength(after);
  });

  it('fn returning while a heartbeat is in flight: the unlock waits for its answer', async () => {
    const lock = new PostgresAdvisoryLock(direct, undefined, { heartbeat: HEARTBEAT });
    const seen = recordQueries(lock, 150);
    const k = key('in-flight');
    await expect(
      lock.run(
        k,
        async () => {
          // Return while the first heartbeat waits for its (slowed) answer.
          for (const until = Date.now() + 3000; !seen.includes('heartbeat') && Date.now() < until; ) await sleep(5);
          return 'done';
        },
        { timeoutMs: 2000 },
      ),
    ).resolves.toBe('done');
    expect(seen.slice(-3)).toEqual(['heartbeat', 'heartbeat answered', 'unlock']);
  });
});
