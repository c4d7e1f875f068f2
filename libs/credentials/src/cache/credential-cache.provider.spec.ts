import { Test } from '@nestjs/testing';
import { ManualClock } from '@app/common';
import { KeyVaultProvider } from '@app/key-vault';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import { resolveCredentialsOptions, type CredentialsCacheOptions } from '../credentials.options';
import { CredentialsPersistence } from '../persistence/credentials-persistence';
import { CREDENTIAL_CACHE_PROVIDER } from './credential-cache.provider';
import { CredentialCache } from './credential-cache';
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
