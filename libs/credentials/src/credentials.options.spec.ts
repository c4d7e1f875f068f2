import type { Redis } from 'ioredis';
import { ManualClock } from '@app/common';
import { CredentialType, ValueStoreKind } from './credential-type';
import { CredentialsConfigurationError } from './errors/credential-errors';
import { resolveCredentialsOptions, type RedisCacheStoreOptions } from './credentials.options';

describe('resolveCredentialsOptions', () => {
  it('applies the documented defaults; the clock is left to the Clock rule', () => {
    const r = resolveCredentialsOptions();
    expect(r).toMatchObject({
      cache: { enabled: true, ttlMs: 300_000, jitterRatio: 0.2, maxEntries: 10_000, maxStaleMs: 0, heartbeat: { intervalMs: 1000, lostAfterMs: 3000 } },
      readAudit: { coalesceWindowMs: 1000, maxPendingKeys: 10_000 },
      vault: { namePrefix: 'cv', maxVersionsPerGeneration: 450 },
      envelope: { currentKeyRefreshMs: 3_600_000, reencryptOnRead: true },
      minWebhookSecretBytes: 24,
      integrations: [],
      defaultPageSize: 50,
      maxPageSize: 500,
      emitEvents: true,
      revokeCompletionGraceMs: 10_000,
    });
    expect(r.clock).toBeUndefined();
    expect(r.valueStores[CredentialType.OAUTH_ACCESS_TOKEN]).toBe(ValueStoreKind.ENVELOPE);
    const clock = new ManualClock();
    const custom = resolveCredentialsOptions({ clock, valueStores: { [CredentialType.OAUTH_ACCESS_TOKEN]: ValueStoreKind.VAULT } });
    expect(custom.clock).toBe(clock);
    expect(custom.valueStores[CredentialType.OAUTH_ACCESS_TOKEN]).toBe(ValueStoreKind.VAULT);
  });

  it('lists every problem in one error, by option name', () => {
    const err = (() => {
      try {
        resolveCredentialsOptions({
          valueStores: { nope: 'vault', [CredentialType.API_KEY]: 'disk' } as never,
          cache: { ttlMs: 0, jitterRatio: 1, maxEntries: 1.5, maxStaleMs: -1 },
          readAudit: { coalesceWindowMs: 60_001, maxPendingKeys: 0 },
          vault: { namePrefix: 'Bad-Prefix', maxVersionsPerGeneration: 501 },
          envelope: { currentKeyRefreshMs: 0, keyEncryptionKey: 'not a key name' },
          minWebhookSecretBytes: 8,
          integrations: ['ok', 'not ok'],
          defaultPageSize: 0,
          maxPageSize: 1.5,
          revokeCompletionGraceMs: 999,
          clock: {} as never,
        });
      } catch (e) {
        return e as CredentialsConfigurationError;
      }
    })();
    expect(err).toBeInstanceOf(CredentialsConfigurationError);
    for (const problem of [
      'valueStores: unknown credential type "nope"',
      `valueStores.${CredentialType.API_KEY}: must be 'vault' or 'envelope'`,
      'cache.ttlMs: must be a positive number of milliseconds',
      'cache.jitterRatio: must be in [0, 1)',
      'cache.maxEntries: must be a positive integer',
      'cache.maxStaleMs: must be ≥ 0',
      'readAudit.coalesceWindowMs: must be in 0..60000 ms',
      'readAudit.maxPendingKeys: must be a positive integer',
      'vault.namePrefix: must match',
      'vault.maxVersionsPerGeneration: must be an integer in 1..500',
      'envelope.currentKeyRefreshMs: must be > 0',
      'envelope.keyEncryptionKey: must be a vault key name',
      'minWebhookSecretBytes: must be an integer ≥ 16',
      'integrations.1: must match',
      'defaultPageSize: must be a positive integer',
      'maxPageSize: must be an integer ≥ defaultPageSize',
      'revokeCompletionGraceMs: must be an integer of milliseconds in 1000..600000',
      'clock: must be a Clock',
    ]) {
      expect(err?.message).toContain(problem);
    }
    expect(err?.message).not.toContain('not ok');
    expect(() => resolveCredentialsOptions({ defaultPageSize: 100, maxPageSize: 50 })).toThrow(/maxPageSize: must be an integer ≥ defaultPageSize/);
    // Also next to an option of the wrong type, in the cache too: one error lists every problem.
    expect(() => resolveCredentialsOptions({ emitEvents: 'yes' as never, defaultPageSize: 100, maxPageSize: 50, cache: { ttlMs: 'long' as never, invalidation: 'redis' } })).toThrow(
      /cache\.ttlMs[\s\S]*cache\.invalidation: 'redis' needs store[\s\S]*emitEvents[\s\S]*maxPageSize: must be an integer ≥ defaultPageSize/,
    );
  });

  it("says what an option of the wrong kind wants, in the house's words, not zod's", () => {
    const bad = { cache: 5, readAudit: 'x', vault: [], envelope: { reencryptOnRead: 'no' }, orphanVersions: { enabled: 1 }, emitEvents: 'yes', integrations: 'github' };
    const message = (() => {
      try {
        resolveCredentialsOptions(bad as never);
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    })();
    for (const problem of [
      'cache: must be an object',
      'readAudit: must be an object',
      'vault: must be an object',
      'envelope.reencryptOnRead: must be a boolean',
      'orphanVersions.enabled: must be a boolean',
      'emitEvents: must be a boolean',
      'integrations: must be a list of integration ids',
    ]) {
      expect(message).toContain(problem);
    }
    expect(message).not.toMatch(/Invalid input|expected (object|boolean|array)/);
    expect(() => resolveCredentialsOptions({ cache: { heartbeat: 3 as never } })).toThrow(/cache\.heartbeat: must be an object/);
    expect(() => resolveCredentialsOptions({ cache: { enabled: 'on' as never } })).toThrow(/cache\.enabled: must be a boolean/);
  });

  it('defaults to the in-process store with automatic invalidation, and checks the redis store', () => {
    expect(resolveCredentialsOptions().cache).toMatchObject({ store: { type: 'memory' }, invalidation: 'auto' });
    const client = { eval: () => undefined } as never;
    const subscriber = () => client;
    const r = resolveCredentialsOptions({ cache: { store: { type: 'redis', client, subscriber } } });
    // The connection is the host's own object, not a copy.
    expect(r.cache.store).toMatchObject({ type: 'redis', keyPrefix: 'cv:cache:', lockMs: 5000, waitMs: 5000, pollMs: 10, operationTimeoutMs: 500 });
    expect((r.cache.store as { client: unknown }).client).toBe(client);

    const problems = (() => {
      try {
        resolveCredentialsOptions({ cache: { store: { type: 'redis', client: {} as never, subscriber: 'x' as never, keyPrefix: 'has space', lockMs: 0 } } });
      } catch (e) {
        return (e as Error).message;
      }
    })();
    for (const p of ['cache.store.client: must be an ioredis connection', 'cache.store.subscriber: must be a function', 'cache.store.keyPrefix: must be 1–64', 'cache.store.lockMs: must be a positive integer']) {
      expect(problems).toContain(p);
    }
    expect(() => resolveCredentialsOptions({ cache: { invalidation: 'redis' } })).toThrow(/cache.invalidation: 'redis' needs store \{ type: 'redis' \}/);
    expect(() => resolveCredentialsOptions({ cache: { store: { type: 'disk' } as never } })).toThrow(/cache.store/);
    expect(() => resolveCredentialsOptions({ cache: { invalidation: 'gossip' as never } })).toThrow(/cache.invalidation: must be 'auto', 'redis', 'postgres' or 'none'/);
  });
  it('takes the heartbeat of the invalidation fan-out: 1 s / lost after 3 s by default; the threshold at least 3 intervals, within bounds', () => {
    expect(resolveCredentialsOptions().cache.heartbeat).toEqual({ intervalMs: 1000, lostAfterMs: 3000 });
    expect(resolveCredentialsOptions({ cache: { heartbeat: { lostAfterMs: 30_000 } } }).cache.heartbeat).toEqual({ intervalMs: 1000, lostAfterMs: 30_000 });
    expect(resolveCredentialsOptions({ cache: { heartbeat: { intervalMs: 200, lostAfterMs: 600 } } }).cache.heartbeat).toEqual({ intervalMs: 200, lostAfterMs: 600 });
    const problemsOf = (heartbeat: object) => {
      try {
        resolveCredentialsOptions({ cache: { ttlMs: 0, heartbeat } });
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    };
    // One late heartbeat must not drop the cache: the threshold is checked against the interval, with the other problems.
    expect(problemsOf({ intervalMs: 2000 })).toMatch(/cache\.ttlMs[\s\S]*cache\.heartbeat\.lostAfterMs: must be at least 3 × heartbeat\.intervalMs/);
    expect(problemsOf({ intervalMs: 1000, lostAfterMs: 2999 })).toContain('cache.heartbeat.lostAfterMs: must be at least 3 × heartbeat.intervalMs');
    const bounds = problemsOf({ intervalMs: 50, lostAfterMs: 30_001 });
    expect(bounds).toContain('cache.heartbeat.intervalMs: must be an integer of milliseconds in 100..10000');
    expect(bounds).toContain('cache.heartbeat.lostAfterMs: must be an integer of milliseconds in 300..30000');
    expect(bounds).not.toContain('at least 3 ×'); // nothing to compare while a field is wrong itself
    expect(problemsOf({ intervalMs: 1000.5, lostAfterMs: 'long' })).toMatch(/heartbeat\.intervalMs: must be an integer[\s\S]*heartbeat\.lostAfterMs: must be an integer/);
    expect(problemsOf({ lostAfter: 5000 })).toMatch(/cache\.heartbeat: Unrecognized key: "lostAfter"/);
  });

  it('refuses a misspelt key, at the root and in nested options, and names it', () => {
    let err: unknown;
    try {
      resolveCredentialsOptions({
        cahce: { ttlMs: 1000 },
        cache: { ttlMS: 1000, store: { type: 'memory', size: 10 } },
        readAudit: { coalesceWindow: 0 },
        vault: { prefix: 'cv' },
        envelope: { reencrypt: false },
      } as never);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CredentialsConfigurationError);
    const message = (err as Error).message;
    expect(message).toMatch(/\(options\): Unrecognized key: "cahce"/);
    expect(message).toMatch(/cache: Unrecognized key: "ttlMS"/);
    expect(message).toMatch(/cache\.store: Unrecognized key: "size"/);
    expect(message).toMatch(/readAudit: Unrecognized key: "coalesceWindow"/);
    expect(message).toMatch(/vault: Unrecognized key: "prefix"/);
    expect(message).toMatch(/envelope: Unrecognized key: "reencrypt"/);
    // The redis store keeps the keys the host passes.
    const client = { eval: () => undefined } as never;
    expect(
      resolveCredentialsOptions({ cache: { store: { type: 'redis', client, subscriber: () => client, keyPrefix: 'cv:cache:' }, invalidation: 'redis' } }).cache.store,
    ).toMatchObject({ type: 'redis', keyPrefix: 'cv:cache:' });
    expect(() => resolveCredentialsOptions({ cache: { store: { type: 'redis', client, subscriber: () => client, lockMS: 1 } as never } })).toThrow(
      /cache\.store: Unrecognized key: "lockMS"/,
    );
  });

  it('takes an ioredis connection as the redis store, typed structurally (the published declarations do not import ioredis)', () => {
    // Checked by tsc: an ioredis Redis fits both structural types.
    const store = (redis: Redis): RedisCacheStoreOptions => ({ type: 'redis', client: redis, subscriber: () => redis.duplicate() });
    expect(store).toBeInstanceOf(Function);
  });
});
