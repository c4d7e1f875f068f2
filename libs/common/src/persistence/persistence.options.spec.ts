import { describeError } from '../errors';
import { OutboxHandlerRegistry } from '../outbox/outbox-handler-registry';
import { PersistenceConfigurationError } from './persistence.errors';
import { outboxBackoffMs, resolvePersistenceOptions } from './persistence.options';

describe('resolvePersistenceOptions', () => {
  it('fills every default', () => {
    expect(resolvePersistenceOptions(undefined)).toEqual({
      outbox: {
        dispatch: true,
        pollIntervalMs: 5000,
        batchSize: 100,
        backoff: { baseMs: 1000, maxMs: 300_000 },
        retentionMs: 7 * 86_400_000,
        pruneEveryMs: 600_000,
        lockRetryMs: 1000,
        maxPayloadBytes: 16_384,
        handlerTimeoutMs: 10_000,
      },
      locks: { maxSessions: 8, heartbeatMs: 10_000, heartbeatTimeoutMs: 5000 },
    });
    expect(resolvePersistenceOptions({ outbox: { pollIntervalMs: 0, backoff: { maxMs: 2000 } } }).outbox).toMatchObject({
      pollIntervalMs: 0,
      backoff: { baseMs: 1000, maxMs: 2000 },
    });
  });

  it('throws one configuration error naming every problem', () => {
    const err = (() => {
      try {
        resolvePersistenceOptions({
          outbox: { batchSize: 0, pollIntervalMs: 5, backoff: { baseMs: 10_000, maxMs: 1000 }, lockKey: '', typo: 1 } as never,
        });
      } catch (e) {
        return e as PersistenceConfigurationError;
      }
    })();
    expect(err).toBeInstanceOf(PersistenceConfigurationError);
    expect(err).toMatchObject({ code: 6001, codeName: 'PERSISTENCE_CONFIGURATION', retryable: false });
    const paths = err!.problems.map((p) => p.split(':')[0]);
    expect(paths).toEqual(expect.arrayContaining(['outbox.batchSize', 'outbox.pollIntervalMs', 'outbox.lockKey', 'outbox']));
    expect(err!.message).toContain('outbox.batchSize');
  });

  it('refuses an isGlobal (always global) without sending it to forRootAsync, which takes none', () => {
    // A forRootAsync factory returning a config object that holds it, as for the other libs' modules.
    expect(() => resolvePersistenceOptions({ isGlobal: true } as never)).toThrow(
      '(options): Unrecognized key: "isGlobal"; PersistenceModule takes no isGlobal: it is always global (remove it)',
    );
  });

  it('takes locks.maxSessions 1..100 and refuses anything else, with the other problems in one error', () => {
    expect(resolvePersistenceOptions({ locks: { maxSessions: 20 } }).locks).toMatchObject({ maxSessions: 20 });
    for (const bad of [0, -1, 2.5, 101, '8', null]) {
      expect(() => resolvePersistenceOptions({ locks: { maxSessions: bad as never } })).toThrow(/locks\.maxSessions/);
    }
    const err = (() => {
      try {
        resolvePersistenceOptions({ outbox: { batchSize: 0 }, locks: { maxSessions: 0, max: 3 } as never });
      } catch (e) {
        return e as PersistenceConfigurationError;
      }
    })();
    expect(err!.problems.map((p) => p.split(':')[0])).toEqual(expect.arrayContaining(['outbox.batchSize', 'locks.maxSessions', 'locks']));
  });

  it('takes the lock heartbeat within its bounds, its deadline below its interval, every problem in one error', () => {
    expect(resolvePersistenceOptions({ locks: { heartbeatMs: 2000, heartbeatTimeoutMs: 500 } }).locks).toEqual({ maxSessions: 8, heartbeatMs: 2000, heartbeatTimeoutMs: 500 });
    for (const bad of [0, 99, 600_001, 2.5, '10000']) {
      expect(() => resolvePersistenceOptions({ locks: { heartbeatMs: bad as never, heartbeatTimeoutMs: 50 } })).toThrow(/locks\.heartbeatMs/);
    }
    for (const bad of [0, 49, 1.5]) expect(() => resolvePersistenceOptions({ locks: { heartbeatTimeoutMs: bad } })).toThrow(/locks\.heartbeatTimeoutMs/);
    // The default deadline (5 s) against a shorter interval, and the other way round.
    expect(() => resolvePersistenceOptions({ locks: { heartbeatMs: 5000 } })).toThrow(/locks\.heartbeatTimeoutMs: must be < heartbeatMs \(5000\)/);
    expect(() => resolvePersistenceOptions({ locks: { heartbeatTimeoutMs: 10_000 } })).toThrow(/locks\.heartbeatTimeoutMs: must be < heartbeatMs \(10000\)/);
    const problems = (() => {
      try {
        resolvePersistenceOptions({ outbox: { batchSize: 0 }, locks: { maxSessions: 0, heartbeatMs: 1000, heartbeatTimeoutMs: 1000 } });
      } catch (e) {
        return (e as PersistenceConfigurationError).problems;
      }
    })();
    expect(problems!.map((p) => p.split(':')[0])).toEqual(expect.arrayContaining(['outbox.batchSize', 'locks.maxSessions', 'locks.heartbeatTimeoutMs']));
  });

  it('checks the backoff bounds against each other once the fields are valid', () => {
    expect(() => resolvePersistenceOptions({ outbox: { backoff: { baseMs: 10_000, maxMs: 1000 } } })).toThrow(/backoff\.baseMs: must be ≤ backoff\.maxMs/);
    // Also when another field has the wrong type: the one error still lists both.
    expect(() => resolvePersistenceOptions({ outbox: { lockKey: 5 as never, backoff: { baseMs: 10_000, maxMs: 1000 } } })).toThrow(
      /outbox\.lockKey[\s\S]*outbox\.backoff\.baseMs: must be ≤ backoff\.maxMs/,
    );
    // Not when the backoff itself is unreadable: no comparison of raw input.
    expect(() => resolvePersistenceOptions({ outbox: { backoff: { baseMs: 'x' as never, maxMs: 1000 } } })).toThrow(/^(?![\s\S]*must be ≤)/);
  });
});

describe('outboxBackoffMs', () => {
  const backoff = { baseMs: 1000, maxMs: 60_000 };

  it('doubles per attempt, capped, with half of it jittered', () => {
    expect([1, 2, 3, 4].map((a) => outboxBackoffMs(a, backoff, () => 0))).toEqual([500, 1000, 2000, 4000]);
    expect([1, 2, 3, 4].map((a) => outboxBackoffMs(a, backoff, () => 0.999999))).toEqual([1000, 2000, 4000, 8000]);
    expect(outboxBackoffMs(50, backoff, () => 1)).toBe(60_000);
    expect(outboxBackoffMs(10_000, backoff, () => 0)).toBe(30_000);
  });

  it('is never zero', () => {
    expect(outboxBackoffMs(1, { baseMs: 1, maxMs: 1 }, () => 0)).toBe(1);
  });
});

describe('OutboxHandlerRegistry', () => {
  it('matches exact names, * and prefix.* patterns, in registration order', () => {
    const r = new OutboxHandlerRegistry();
    const [a, b, c, d] = [jest.fn(), jest.fn(), jest.fn(), jest.fn()];
    r.register('credential.rotated', a);
    r.register('*', b);
    r.register('credential.*', c);
    const off = r.register('credential.rotated', d);
    off();
    off();
    expect(r.handlersFor('credential.rotated')).toEqual([a, b, c]);
    expect(r.handlersFor('credential')).toEqual([b]);
    expect(r.handlersFor('credentials.rotated')).toEqual([b]);
    expect(() => r.register('', a)).toThrow(TypeError);
  });
});

describe('describeError', () => {
  it('keeps the name and code, never the message', () => {
    expect(describeError(Object.assign(new TypeError('token=abc'), { code: 'E1' }))).toBe('TypeError(E1)');
    expect(describeError({ name: 'QueryFailedError', driverError: { code: '23505' }, message: 'value abc' })).toBe('QueryFailedError(23505)');
    expect(describeError(undefined)).toBe('undefined');
    expect(describeError('plain string')).toBe('string');
    expect(describeError(Object.assign(new Error('x'), { name: 'N'.repeat(300) }))).toHaveLength(200);
  });
});
