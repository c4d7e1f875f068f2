import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { ManualClock, type OperationContext } from '@app/common';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { type CapturingLogger, createTestDatabase, credentialsStackImports, type TestDatabase, type TestDatabaseKind } from '@app/testing';
import { CredentialsService, CredentialType, MIN_ORPHAN_GRACE_MS } from '../index';

/** The credentials stack of an orphan-versions spec: its own database and local vault. */
export interface OrphanVersionsStack {
  emu: KeyVaultEmulator;
  db: TestDatabase;
  moduleRef: TestingModule;
  /** The values stored, one credential each (a spec asserts none of them shows up). */
  values: string[];
  close(): Promise<void>;
}

/**
 * Test-only (not exported from the lib): the stack on a new database of `kind` against a new local vault (the real
 * SDK), `count` API-key credentials of `ctx` stored, and the clock past the orphan grace period. `logger` gets the
 * log lines from then on (installed after compile: the testing module installs its own).
 */
export async function startOrphanVersionsStack(kind: TestDatabaseKind, ctx: OperationContext, count: number, logger: CapturingLogger): Promise<OrphanVersionsStack> {
  const clock = new ManualClock(new Date());
  const emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
  const db = await createTestDatabase(kind);
  const moduleRef = await Test.createTestingModule({
    imports: credentialsStackImports({
      database: db.options,
      vault: emu,
      keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20, breaker: { consecutiveFailures: 1000 } } },
      credentials: { clock, orphanVersions: { graceMs: MIN_ORPHAN_GRACE_MS, maxSecretsPerRun: 100 } },
    }),
  }).compile();
  await moduleRef.init();
  Logger.overrideLogger(logger);
  const service = moduleRef.get(CredentialsService);
  const values = Array.from({ length: count }, () => `k-${randomBytes(12).toString('hex')}`);
  for (const [i, value] of values.entries()) await service.store(ctx, { integrationId: 'acme', connectionId: `c${i}`, type: CredentialType.API_KEY, value });
  clock.set(new Date(clock.now().getTime() + 2 * MIN_ORPHAN_GRACE_MS));
  const close = async () => {
    await moduleRef.close();
    await emu.stop();
    await db.drop();
    Logger.overrideLogger(new Logger());
  };
  return { emu, db, moduleRef, values, close };
}
