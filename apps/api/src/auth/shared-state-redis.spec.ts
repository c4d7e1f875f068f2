import type { Logger } from '@nestjs/common';
import type { HostRedis } from '../redis/host-redis';
import { SharedStateRedis } from './shared-state-redis';

/** The host's Redis connection, always "ready"; each call does what the test says. */
function build(retryAfterMs = 0) {
  const redis = { enabled: true, keyPrefix: 't:', client: { status: 'ready' } } as unknown as HostRedis;
  const state = new SharedStateRedis(redis, { timeoutMs: 20, retryAfterMs });
  const logger = (state as unknown as { logger: Logger }).logger;
  const warned = jest.spyOn(logger, 'warn').mockImplementation(() => undefined);
  const logged = jest.spyOn(logger, 'log').mockImplementation(() => undefined);
  const lines = () => warned.mock.calls.map((c) => String(c[0]));
  const infos = () => logged.mock.calls.map((c) => String(c[0]));
  return { state, lines, infos };
}

describe('SharedStateRedis', () => {
  it('falls back when a Redis call fails, logging the reply code but never the reply text', async () => {
    const { state, lines } = build();
    const reply = Object.assign(new Error('WRONGTYPE Operation against a key holding the wrong kind of value MARKER-61aa'), { name: 'ReplyError' });
    await expect(state.run('rate_limit', () => Promise.reject(reply))).resolves.toBeUndefined();
    const connection = Object.assign(new Error('connect ECONNREFUSED 10.0.0.7:6379 MARKER-61aa'), { code: 'ECONNREFUSED' });
    await expect(state.run('oauth_cooldown', () => Promise.reject(connection))).resolves.toBeUndefined();
    expect(state.fallbacks).toMatchObject({ rate_limit: 1, oauth_cooldown: 1 });
    expect(lines()).toHaveLength(2);
    expect(lines()[0]).toContain('ReplyError(WRONGTYPE)');
    expect(lines()[1]).toContain('Error(ECONNREFUSED)');
    for (const l of lines()) expect(l).not.toContain('MARKER-61aa');
  });

  it("names at start the connection's refused credentials when the PING was given up (MaxRetriesPerRequestError), not an unreachable Redis", async () => {
    const givenUp = Object.assign(new Error('Reached the max retries per request limit (which is 2). Refer to "maxRetriesPerRequest" option for details.'), { name: 'MaxRetriesPerRequestError' });
    const redis = { enabled: true, keyPrefix: 't:', client: { ping: () => Promise.reject(givenUp) }, refusedCredentialsCode: 'WRONGPASS' } as unknown as HostRedis;
    const state = new SharedStateRedis(redis);
    const warned = jest.spyOn((state as unknown as { logger: Logger }).logger, 'warn').mockImplementation(() => undefined);
    await state.onApplicationBootstrap();
    expect(warned.mock.calls.map((c) => String(c[0]))).toEqual([
      'Redis refused the credentials of REDIS_URL at start (WRONGPASS); limits and counters stay per process until it accepts them',
    ]);
  });

  it('names a call that did not answer in time by a code', async () => {
    const { state, lines } = build();
    await expect(state.run('suspicious_activity', () => new Promise(() => undefined))).resolves.toBeUndefined();
    expect(lines()).toEqual([expect.stringContaining('Error(ETIMEDOUT)')]);
  });

  it('names a command the user may not run (NOPERM) once, then each minute it lasts with the calls refused — not at each call; afresh after two quiet minutes', async () => {
    jest.useFakeTimers({ now: 0 });
    try {
      const { state, lines } = build();
      // ioredis' reply error: the command on it, the user named in the text (Redis 7.2).
      const refused = () =>
        Object.assign(new Error("NOPERM User ops-MARKER-61aa has no permissions to run the 'evalsha' command"), { name: 'ReplyError', command: { name: 'evalsha', args: ['MARKER-61aa'] } });
      for (let t = 0; t <= 130_000; t += 500) {
        jest.setSystemTime(t);
        await expect(state.run('rate_limit', () => Promise.reject(refused()))).resolves.toBeUndefined();
      }
      jest.setSystemTime(400_000);
      await state.run('rate_limit', () => Promise.reject(refused()));
      const fix = 'limits and counters stay per process; give the REDIS_URL user the commands the host runs';
      expect(lines()).toEqual([
        `Redis refused EVALSHA for lack of permission (NOPERM): ${fix} (logged again each minute it lasts)`,
        `Redis refused EVALSHA for lack of permission (NOPERM), for 60 s (121 refused calls): ${fix}`,
        `Redis refused EVALSHA for lack of permission (NOPERM), for 120 s (241 refused calls): ${fix}`,
        `Redis refused EVALSHA for lack of permission (NOPERM): ${fix} (logged again each minute it lasts)`,
      ]);
      expect(state.fallbacks.rate_limit).toBe(262);
    } finally {
      jest.useRealTimers();
    }
  });

  it('says a Redis outage (timeouts, a lost connection) once with its cause, then each minute with the failed calls, and its end once — not at each retry', async () => {
    jest.useFakeTimers({ now: 0 });
    try {
      const { state, lines, infos } = build(1000);
      const lost = () => Object.assign(new Error('read ECONNRESET 10.0.0.7:6379 MARKER-61aa'), { code: 'ECONNRESET' });
      const slow = () => Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' });
      // Under traffic: a call each 500 ms; one each second (retryAfterMs) reaches Redis and fails.
      for (let t = 0; t <= 130_000; t += 500) {
        jest.setSystemTime(t);
        await expect(state.run('rate_limit', () => Promise.reject(t >= 30_000 && t < 40_000 ? slow() : lost()))).resolves.toBeUndefined();
      }
      jest.setSystemTime(131_000);
      await expect(state.run('rate_limit', () => Promise.resolve('ok'))).resolves.toBe('ok');
      await state.run('rate_limit', () => Promise.resolve('ok'));
      const fallback = 'limits and counters fall back to per process';
      expect(lines()).toEqual([
        `Redis calls fail (Error(ECONNRESET)): ${fallback} (logged again each minute it lasts, and once they answer again)`,
        // A new cause is said at once; back to one seen already, it is not.
        `Redis calls fail (Error(ETIMEDOUT)): ${fallback} (logged again each minute it lasts, and once they answer again)`,
        `Redis calls fail for 90 s (91 failed calls): ${fallback}`,
      ]);
      expect(infos()).toEqual(['Redis calls answer again after 131 s (131 failed calls)']);
      for (const l of lines()) expect(l).not.toContain('MARKER-61aa');
      expect(state.fallbacks.rate_limit).toBe(261);
    } finally {
      jest.useRealTimers();
    }
  });
});
