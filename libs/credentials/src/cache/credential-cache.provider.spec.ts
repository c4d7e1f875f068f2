import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ManualClock, OutboxDeferredError, OutboxHandlerRegistry } from '@app/common';
import { KeyVaultProvider } from '@app/key-vault';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import { resolveCredentialsOptions, type CredentialsCacheOptions } from '../credentials.options';
import { CredentialsPersistence } from '../persistence/credentials-persistence';
import { CacheInvalidationRelay, CREDENTIAL_CACHE_PROVIDER } from './credential-cache.provider';
import { CredentialCache } from './credential-cache';
import { LruCredentialCache } from './lru-credential-cache';
import { TieredCredentialCache } from './tiered-credential-cache';

/** The cache the module binds on a PostgreSQL DataSource (fan-out over NOTIFY), not started: nothing connects. */
async function cacheOnPostgres(cache: CredentialsCacheOptions): Promise<CredentialCache> {
  const moduleRef = await Test.createTestingModule({
    providers: [
      CREDENTIAL_CACHE_PROVIDER,
      { provide: CREDENTIALS_RESOLVED_OPTIONS, useValue: resolveCredentialsOptions({ cache }) },
      { provide: CREDENTIALS_CLOCK, useValue: new ManualClock() },
      { provide: CredentialsPersistence, useValue: { runner: { dataSource: { options: { type: 'postgres', schema: 'provider_spec' } } } } },
      { provide: KeyVaultProvider, useValue: {} },
    ],
  }).compile();
  return moduleRef.get(CredentialCache);
}

/** Whether `promise` has settled once the timers due by now have run. */
async function settled(promise: Promise<void>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await Promise.resolve();
  await Promise.resolve();
  return done;
}

describe('CREDENTIAL_CACHE_PROVIDER', () => {
  afterEach(() => jest.useRealTimers());

  it('gives the shared cache the configured heartbeat: a revoke that could not announce its eviction waits out that threshold, not the default', async () => {
    jest.useFakeTimers();
    const cache = await cacheOnPostgres({ heartbeat: { intervalMs: 2000, lostAfterMs: 20_000 } });
    expect(cache).toBeInstanceOf(TieredCredentialCache);
    // A replica that cannot hear evictions stops serving after lostAfterMs, noticed at its next heartbeat.
    const waited = cache.outlastUnheardEviction();
    await jest.advanceTimersByTimeAsync(21_999);
    expect(await settled(waited)).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    expect(await settled(waited)).toBe(true);
  });

  it('keeps 1 s / 3 s when the heartbeat is not configured', async () => {
    jest.useFakeTimers();
    const waited = (await cacheOnPostgres({})).outlastUnheardEviction();
    await jest.advanceTimersByTimeAsync(3999);
    expect(await settled(waited)).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    expect(await settled(waited)).toBe(true);
  });
});

describe('CacheInvalidationRelay while evictions cannot be announced', () => {
  afterEach(() => {
    jest.useRealTimers();
    Logger.overrideLogger(new Logger());
  });

  /** The relay's eviction handler over a cache whose `evictEverywhere` answers `evict`, and the lines it logs. */
  async function relay(evict: () => Promise<void>, pending: () => number) {
    const handlers = new OutboxHandlerRegistry();
    const cache = new LruCredentialCache({ maxEntries: 10, ttlMs: 60_000, jitterRatio: 0, maxStaleMs: 0 }, new ManualClock());
    jest.spyOn(cache, 'evictEverywhere').mockImplementation(evict);
    const backlog = jest.fn(async () => ({ pending: pending(), retrying: 0, oldestCreatedAt: null }));
    const persistence = { handlers, outbox: { backlog } } as unknown as CredentialsPersistence;
    const lines: string[] = [];
    const line = (level: string) => (m: string, context?: string) => void (context === 'CredentialCache' && lines.push(`${level} ${m}`));
    Logger.overrideLogger({ warn: line('warn'), log: line('info'), error: line('error'), debug: () => undefined, verbose: () => undefined });
    await new CacheInvalidationRelay(cache, persistence).onModuleInit();
    const [handler] = handlers.handlersFor('credential.deleted');
    let n = 0;
    const deliver = () => handler({ id: `e${++n}`, name: 'credential.deleted', tenantId: 'acme', payload: { credentialId: `c${n}` }, createdAt: new Date(0), attempts: 0 });
    return { deliver, lines, backlog };
  }

  it('logs the outage once with the events waiting, a reminder each minute, its end at info; each event is deferred to the backoff, not a failure', async () => {
    jest.useFakeTimers({ now: 0 });
    let down = true;
    let pending = 3;
    const gone = Object.assign(new Error('Reached the max retries per request limit (which is 2).'), { name: 'MaxRetriesPerRequestError' });
    const { deliver, lines, backlog } = await relay(async () => {
      if (down) throw gone;
    }, () => pending);
    // An eviction every 2 s for 130 s (the outbox retrying its events), 3 then 40 of them waiting.
    for (let t = 0; t <= 130_000; t += 2_000) {
      jest.setSystemTime(t);
      if (t === 30_000) pending = 40;
      const thrown = await Promise.resolve(deliver()).then(() => undefined, (e: unknown) => e);
      expect(thrown).toBeInstanceOf(OutboxDeferredError);
      expect(thrown).toMatchObject({ code: 'MaxRetriesPerRequestError' });
    }
    expect(backlog).toHaveBeenCalledTimes(3); // for each line only
    jest.setSystemTime(131_000);
    down = false;
    await deliver();
    await deliver();
    expect(lines).toEqual([
      'warn cache evictions cannot be announced to the other replicas (MaxRetriesPerRequestError): 3 outbox events wait; the outbox delivers them again with its backoff (logged again each minute this lasts, and once one goes through)',
      'warn cache evictions cannot be announced for 60 s (31 failed deliveries): 40 outbox events wait; the outbox delivers them again with its backoff',
      'warn cache evictions cannot be announced for 120 s (61 failed deliveries): 40 outbox events wait; the outbox delivers them again with its backoff',
      'info cache evictions are announced again after 131 s (66 failed deliveries)',
    ]);
  });

  it('says the events wait without their number when the outbox cannot be read, and logs nothing for an eviction that goes through', async () => {
    const { deliver, lines } = await relay(
      async () => {
        throw Object.assign(new Error('no answer within 500 ms'), { code: 'ETIMEDOUT' });
      },
      () => {
        throw new Error('database gone');
      },
    );
    await expect(deliver()).rejects.toBeInstanceOf(OutboxDeferredError);
    expect(lines).toEqual([
      'warn cache evictions cannot be announced to the other replicas (Error(ETIMEDOUT)): outbox events wait; the outbox delivers them again with its backoff (logged again each minute this lasts, and once one goes through)',
    ]);
    const ok = await relay(async () => undefined, () => 0);
    await ok.deliver();
    expect(ok.lines).toEqual([]);
  });

  it('names an eviction Redis refused for lack of permission (its script may not PUBLISH): the command, never the user', async () => {
    const refused = Object.assign(new Error("ERR The user executing the script can't run this command or subcommand script: ee5bed0f, on @user_script:1."), {
      name: 'ReplyError',
      command: { name: 'evalsha', args: [] },
    });
    const { deliver, lines } = await relay(
      async () => {
        throw refused;
      },
      () => 2,
    );
    await expect(deliver()).rejects.toBeInstanceOf(OutboxDeferredError);
    expect(lines).toEqual([
      "warn cache evictions cannot be announced to the other replicas (Redis refused a command in EVALSHA's script for lack of permission (ERR)): 2 outbox events wait; the outbox delivers them again with its backoff (logged again each minute this lasts, and once one goes through)",
    ]);
  });
});
