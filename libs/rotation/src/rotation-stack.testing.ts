/** The test stack of the rotation core's integration specs (not part of the lib's public API). */
import { ScheduleModule } from '@nestjs/schedule';
import { Test, type TestingModule } from '@nestjs/testing';
import { ManualClock, OutboxEventEntity } from '@app/common';
import { CredentialsService } from '@app/credentials';
import type { KeyVaultEmulator } from '@app/keyvault-emulator';
import { credentialsStackImports, type TestDatabase } from '@app/testing';
import { DataSource } from 'typeorm';
import { ExpiryMonitorService, RevocationService, RotationCheckService, RotationModule, RotationPolicyService, RotationService, type RotationModuleOptions } from './index';

export const DAY = 86_400_000;

export interface RotationStack {
  moduleRef: TestingModule;
  credentials: CredentialsService;
  policies: RotationPolicyService;
  rotation: RotationService;
  revocation: RevocationService;
  expiry: ExpiryMonitorService;
  check: RotationCheckService;
  dataSource: DataSource;
}

/** One "replica": its own Nest app, cache, lock and pool on a shared database. */
export async function buildRotationStack(db: TestDatabase, emu: KeyVaultEmulator, clock: ManualClock, options: RotationModuleOptions = {}, style: 'forRoot' | 'forRootAsync' = 'forRoot'): Promise<RotationStack> {
  const jobs = { expiryMonitor: { enabled: false }, rotationCheck: { enabled: false } };
  const moduleRef = await Test.createTestingModule({
    imports: [
      ...credentialsStackImports({
        database: db.options,
        vault: emu,
        keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20, breaker: { consecutiveFailures: 1000 } } },
        persistence: { outbox: { dispatch: false } },
        credentials: { clock, isGlobal: true },
      }),
      ScheduleModule.forRoot(),
      style === 'forRoot' ? RotationModule.forRoot({ clock, ...jobs, ...options }) : RotationModule.forRootAsync({ useFactory: async () => ({ clock, ...jobs, ...options }) }),
    ],
  }).compile();
  await moduleRef.init();
  return {
    moduleRef,
    credentials: moduleRef.get(CredentialsService),
    policies: moduleRef.get(RotationPolicyService),
    rotation: moduleRef.get(RotationService),
    revocation: moduleRef.get(RevocationService),
    expiry: moduleRef.get(ExpiryMonitorService),
    check: moduleRef.get(RotationCheckService),
    dataSource: moduleRef.get(DataSource),
  };
}

export async function outboxEvents(ds: DataSource, name: string, tenantId: string): Promise<Array<Record<string, unknown>>> {
  const rows = await ds.getRepository(OutboxEventEntity).find({ where: { name, tenantId }, order: { createdAt: 'ASC' } });
  return rows.map((r) => (typeof r.payload === 'string' ? JSON.parse(r.payload) : r.payload) as Record<string, unknown>);
}

