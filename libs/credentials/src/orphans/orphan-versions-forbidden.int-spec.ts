/**
 * Integration: the orphan-versions job while the host's vault identity lacks the list permission (403 FORBIDDEN from
 * the local vault through the real SDK, SQLite). A refusal shared by every secret fails the run once, with the code —
 * not one warning per credential secret, each after a call the vault refuses alike.
 */
import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { ManualClock, type OperationContext } from '@app/common';
import { KeyVaultErrorCode } from '@app/key-vault';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, credentialsStackImports, rejection, type TestDatabase } from '@app/testing';
import { CredentialOrphanVersions, CredentialsService, CredentialType, MIN_ORPHAN_GRACE_MS } from '../index';

describe('the orphan-versions job while the vault denies listing (sqlite)', () => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let moduleRef: TestingModule;
  const clock = new ManualClock(new Date());
  const logger = new CapturingLogger();
  const ctx: OperationContext = { tenantId: `orph_deny_${randomBytes(3).toString('hex')}`, actor: { id: 'user:ops' } };

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase('sqlite');
    moduleRef = await Test.createTestingModule({
      imports: credentialsStackImports({
        database: db.options,
        vault: emu,
        keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20, breaker: { consecutiveFailures: 1000 } } },
        credentials: { clock, orphanVersions: { graceMs: MIN_ORPHAN_GRACE_MS, maxSecretsPerRun: 100 } },
      }),
    }).compile();
    await moduleRef.init();
    Logger.overrideLogger(logger); // after compile: the testing module installs its own logger
    const service = moduleRef.get(CredentialsService);
    for (let i = 0; i < 6; i++) await service.store(ctx, { integrationId: 'acme', connectionId: `c${i}`, type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}` });
    clock.set(new Date(clock.now().getTime() + 2 * MIN_ORPHAN_GRACE_MS));
  });
  afterEach(() => emu.clearDenials());
  afterAll(async () => {
    await moduleRef?.close();
    await emu?.stop();
    await db?.drop();
    Logger.overrideLogger(new Logger());
  });

  it.each(['listSecrets', 'listSecretVersions'])('%s denied: the run fails once with FORBIDDEN, one vault refusal, no warning per secret', async (operation) => {
    emu.deny({ operations: [operation] });
    emu.resetStats();
    logger.lines.length = 0;
    const e = (await rejection(moduleRef.get(CredentialOrphanVersions).runOnce())) as { code?: number; message: string };
    expect(e.code).toBe(KeyVaultErrorCode.FORBIDDEN);
    expect(e.message).toMatch(/FORBIDDEN/);
    expect(emu.stats().byOperationAndStatus[`${operation}:403`]).toBe(1);
    expect(logger.lines.filter((l) => l.startsWith('warn '))).toEqual([]);

    emu.clearDenials();
    expect(await moduleRef.get(CredentialOrphanVersions).runOnce()).toMatchObject({ acquired: true, failed: 0, passComplete: true });
  });
});
