import { register } from 'prom-client';
import type { Outbox, OutboxBacklog } from '@app/common';
import type { CredentialExpiryScanner, KeyEncryptionKeyHealth, KeyEncryptionKeyHealthCheck, VaultValueDeletion } from '@app/credentials';
import { OpsMetrics } from './ops-metrics';

const DAY = 86_400_000;
const noKek = { checkKeyEncryptionKey: async () => null } as unknown as KeyEncryptionKeyHealthCheck;
const emptyOutbox = { backlog: async (): Promise<OutboxBacklog> => ({ pending: 0, retrying: 0, oldestCreatedAt: null }) } as unknown as Outbox;
const noDeletes = { pending: async () => 0 } as unknown as VaultValueDeletion;

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
    new OpsMetrics(scanner as unknown as CredentialExpiryScanner, noKek, emptyOutbox, noDeletes).onModuleInit();
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
    new OpsMetrics(scanner, { checkKeyEncryptionKey: async () => health } as unknown as KeyEncryptionKeyHealthCheck, emptyOutbox, noDeletes).onModuleInit();
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

describe('OpsMetrics: the outbox backlog gauges', () => {
  afterEach(() => {
    jest.useRealTimers();
    register.clear();
  });

  it('report the undelivered events and the oldest one\'s age, read at most every 15 s, and keep their last samples while the database does not answer', async () => {
    jest.useFakeTimers({ now: new Date('2026-06-01T00:00:00Z'), doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const scanner = { scanExpiringAcrossTenants: async () => [] } as unknown as CredentialExpiryScanner;
    let backlog: OutboxBacklog | Error = { pending: 3, retrying: 1, oldestCreatedAt: new Date(Date.now() - 90_000) };
    const outbox = {
      backlog: jest.fn(async () => {
        if (backlog instanceof Error) throw backlog;
        return backlog;
      }),
    };
    new OpsMetrics(scanner, noKek, outbox as unknown as Outbox, noDeletes).onModuleInit();
    const samples = async () => (await register.metrics()).split('\n').filter((l) => l.startsWith('credential_vault_outbox_'));
    expect(await samples()).toEqual([
      'credential_vault_outbox_pending_events{state="all"} 3',
      'credential_vault_outbox_pending_events{state="retrying"} 1',
      'credential_vault_outbox_oldest_pending_age_seconds 90',
    ]);
    expect(outbox.backlog).toHaveBeenCalledTimes(1); // one read for both gauges

    const first = await samples();
    backlog = { pending: 0, retrying: 0, oldestCreatedAt: null };
    expect(await samples()).toEqual(first);
    expect(outbox.backlog).toHaveBeenCalledTimes(1); // within 15 s: the last read
    jest.setSystemTime(Date.now() + 16_000);
    expect(await samples()).toEqual(['credential_vault_outbox_pending_events{state="all"} 0', 'credential_vault_outbox_pending_events{state="retrying"} 0', 'credential_vault_outbox_oldest_pending_age_seconds 0']);

    backlog = { pending: 5, retrying: 5, oldestCreatedAt: new Date(Date.now() - 3_600_000) };
    jest.setSystemTime(Date.now() + 16_000);
    const last = await samples();
    expect(last).toContain('credential_vault_outbox_oldest_pending_age_seconds 3616');
    backlog = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    jest.setSystemTime(Date.now() + 16_000);
    expect(await samples()).toEqual(last);
  });
});

describe('OpsMetrics: the pending vault deletes gauge', () => {
  afterEach(() => {
    jest.useRealTimers();
    register.clear();
  });

  it('counts the deletes whose Key Vault side is not done, read at most every 15 s, keeping its last sample while the database does not answer', async () => {
    jest.useFakeTimers({ now: new Date('2026-06-01T00:00:00Z'), doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const scanner = { scanExpiringAcrossTenants: async () => [] } as unknown as CredentialExpiryScanner;
    let pending: number | Error = 2;
    const deletion = {
      pending: jest.fn(async () => {
        if (pending instanceof Error) throw pending;
        return pending;
      }),
    };
    new OpsMetrics(scanner, noKek, emptyOutbox, deletion as unknown as VaultValueDeletion).onModuleInit();
    const samples = async () => (await register.metrics()).split('\n').filter((l) => l.startsWith('credential_vault_vault_deletes_pending'));
    expect(await samples()).toEqual(['credential_vault_vault_deletes_pending 2']);
    pending = 0;
    expect(await samples()).toEqual(['credential_vault_vault_deletes_pending 2']);
    jest.setSystemTime(Date.now() + 16_000);
    expect(await samples()).toEqual(['credential_vault_vault_deletes_pending 0']);
    expect(deletion.pending).toHaveBeenCalledTimes(2);
    pending = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    jest.setSystemTime(Date.now() + 16_000);
    expect(await samples()).toEqual(['credential_vault_vault_deletes_pending 0']);
  });
});
