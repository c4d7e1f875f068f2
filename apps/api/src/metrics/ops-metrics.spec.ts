import { register } from 'prom-client';
import type { CredentialExpiryScanner, DataKeyService, KeyEncryptionKeyHealth } from '@app/credentials';
import { OpsMetrics } from './ops-metrics';

const DAY = 86_400_000;
const noKek = { checkKeyEncryptionKey: async () => null } as unknown as DataKeyService;

describe('OpsMetrics: the client certificate gauge', () => {
  afterEach(() => {
    jest.useRealTimers();
    register.clear();
  });

  it('keeps the last counts when a scan fails (the database is down), so a scrape still answers every series', async () => {
    jest.useFakeTimers({ now: new Date('2026-06-01T00:00:00Z'), doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    let down = false;
    const scanner = {
      scanExpiringAcrossTenants: jest.fn(async () => {
        if (down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
        return [{ tenantId: 't', id: '00000000-0000-4000-8000-000000000001', expiresAt: new Date(Date.now() + 3 * DAY) }];
      }),
    };
    new OpsMetrics(scanner as unknown as CredentialExpiryScanner, noKek).onModuleInit();
    const gauge = async () => (await register.metrics()).split('\n').filter((l) => l.startsWith('credential_vault_client_certificates_expiring{'));
    expect(await gauge()).toContain('credential_vault_client_certificates_expiring{window="7d"} 1');

    down = true;
    jest.setSystemTime(Date.now() + 61_000);
    expect(await gauge()).toContain('credential_vault_client_certificates_expiring{window="7d"} 1');
    expect((await register.metrics()).includes('credential_vault_oauth_refreshes_total')).toBe(true);
    // The failed scan is not retried on every scrape: once per minute.
    const calls = scanner.scanExpiringAcrossTenants.mock.calls.length;
    await gauge();
    expect(scanner.scanExpiringAcrossTenants.mock.calls.length).toBe(calls);

    down = false;
    jest.setSystemTime(Date.now() + 61_000);
    await gauge();
    expect(scanner.scanExpiringAcrossTenants.mock.calls.length).toBe(calls + 1);
  });
});

describe('OpsMetrics: the envelope key-encryption key gauge', () => {
  afterEach(() => register.clear());

  it('is 1 while the key works, 0 while it cannot be used, keeps its last sample while the vault does not answer, and has none without a key', async () => {
    const scanner = { scanExpiringAcrossTenants: async () => [] } as unknown as CredentialExpiryScanner;
    let health: KeyEncryptionKeyHealth | null = null;
    new OpsMetrics(scanner, { checkKeyEncryptionKey: async () => health } as unknown as DataKeyService).onModuleInit();
    const samples = async () => (await register.metrics()).split('\n').filter((l) => l.startsWith('credential_vault_envelope_kek_usable'));
    expect(await samples()).toEqual([]);
    const at = new Date();
    health = { keyName: 'cv-kek', status: 'usable', version: 'v1', checkedAt: at };
    expect(await samples()).toEqual(['credential_vault_envelope_kek_usable{key="cv-kek"} 1']);
    health = { keyName: 'cv-kek', status: 'unusable', problem: 'its latest version is disabled', checkedAt: at };
    expect(await samples()).toEqual(['credential_vault_envelope_kek_usable{key="cv-kek"} 0']);
    health = { keyName: 'cv-kek', status: 'unknown', problem: 'the vault answered SERVICE_UNAVAILABLE', checkedAt: at };
    expect(await samples()).toEqual(['credential_vault_envelope_kek_usable{key="cv-kek"} 0']);
  });
});
