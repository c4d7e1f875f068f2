import type { Logger } from '@nestjs/common';
import type { HostRedis } from '../redis/host-redis';
import { SharedStateRedis } from './shared-state-redis';

/** The host's Redis connection, always "ready"; each call does what the test says. */
function build() {
  const redis = { enabled: true, keyPrefix: 't:', client: { status: 'ready' } } as unknown as HostRedis;
  const state = new SharedStateRedis(redis, { timeoutMs: 20, retryAfterMs: 0 });
  const warned = jest.spyOn((state as unknown as { logger: Logger }).logger, 'warn').mockImplementation(() => undefined);
  const lines = () => warned.mock.calls.map((c) => String(c[0]));
  return { state, lines };
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

  it('names a call that did not answer in time by a code', async () => {
    const { state, lines } = build();
    await expect(state.run('suspicious_activity', () => new Promise(() => undefined))).resolves.toBeUndefined();
    expect(lines()).toEqual([expect.stringContaining('Error(ETIMEDOUT)')]);
  });
});
