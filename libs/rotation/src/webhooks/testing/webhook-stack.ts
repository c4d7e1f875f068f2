import { Module, type LoggerService } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { Test, type TestingModule } from '@nestjs/testing';
import { AuditLogEntry } from '@app/audit';
import { createDistributedLock, ManualClock, OutboxEventEntity, ScheduledJobsModule } from '@app/common';
import { CredentialsService } from '@app/credentials';
import type { KeyVaultEmulator } from '@app/keyvault-emulator';
import { credentialsStackImports, type TestDatabase } from '@app/testing';
import { DataSource } from 'typeorm';
import { RotationNoticeRepository } from '../../jobs/rotation-notice.repository';
import { WebhookSecretVersionEntity } from '../persistence/webhook-secret-version.entity';
import { WebhookSecretKeyring } from '../webhook-secret-keyring';
import { WebhookSecretRotationJob } from '../webhook-secret-rotation.job';
import { WebhookSecretRotator } from '../webhook-secret-rotator';
import { WebhookSecretUpdaterRegistry, type WebhookSecretUpdate, type WebhookSecretUpdater } from '../webhook-secret-updater';
import { resolveWebhookSecretsOptions, type WebhookSecretsOptions } from '../webhook-secrets.options';
import { WebhookSecretsService } from '../webhook-secrets.service';
import { WEBHOOK_SECRETS_CLOCK, WEBHOOK_SECRETS_LOCK, WEBHOOK_SECRETS_OPTIONS } from '../webhook-secrets.tokens';
import { WEBHOOK_CORE_PROVIDERS } from '../index';

/** A provider's webhook-secret API, faked: records every push, fails the next `failNext` ones. */
export class RecordingUpdater implements WebhookSecretUpdater {
  readonly calls: WebhookSecretUpdate[] = [];
  failNext = 0;

  async update(update: WebhookSecretUpdate): Promise<void> {
    this.calls.push(update);
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('provider answered 503');
    }
  }
}

export interface WebhookStack {
  moduleRef: TestingModule;
  service: WebhookSecretsService;
  rotator: WebhookSecretRotator;
  keyring: WebhookSecretKeyring;
  job: WebhookSecretRotationJob;
  credentials: CredentialsService;
  updaters: WebhookSecretUpdaterRegistry;
  ds: DataSource;
  /** Rows of the versions table of a credential, oldest first. */
  versionRows(credentialId: string): Promise<WebhookSecretVersionEntity[]>;
  /** Outbox rows and audit rows as JSON text, to search for values that must never be there. */
  persistedText(): Promise<string>;
}

/**
 * One "replica": credentials stack (real Key Vault SDK against the emulator, real audit, outbox and
 * database), ScheduleModule, and the webhook services with their tokens provided directly (the
 * RotationModule wiring has its own test), a DistributedLock of its own DataSource.
 */
export async function startWebhookStack(
  db: TestDatabase,
  vault: KeyVaultEmulator,
  clock: ManualClock,
  options: WebhookSecretsOptions = {},
  logger?: LoggerService,
): Promise<WebhookStack> {
  @Module({
    imports: [ScheduledJobsModule],
    providers: [
      ...WEBHOOK_CORE_PROVIDERS,
      RotationNoticeRepository,
      { provide: WEBHOOK_SECRETS_OPTIONS, useValue: resolveWebhookSecretsOptions({ job: { enabled: false }, ...options }) },
      { provide: WEBHOOK_SECRETS_CLOCK, useValue: clock },
      { provide: WEBHOOK_SECRETS_LOCK, useFactory: (ds: DataSource) => createDistributedLock(ds), inject: [DataSource] },
    ],
  })
  class WebhookTestModule {}

  const builder = Test.createTestingModule({
    imports: [
      ...credentialsStackImports({
        database: db.options,
        vault,
        keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20, breaker: { consecutiveFailures: 1000 } } },
        credentials: { clock, isGlobal: true },
        persistence: { outbox: { dispatch: false } },
      }),
      ScheduleModule.forRoot(),
      WebhookTestModule,
    ],
  });
  const moduleRef = await (logger ? builder.setLogger(logger) : builder).compile();
  await moduleRef.init();
  const ds = moduleRef.get(DataSource);
  return {
    moduleRef,
    service: moduleRef.get(WebhookSecretsService),
    rotator: moduleRef.get(WebhookSecretRotator),
    keyring: moduleRef.get(WebhookSecretKeyring),
    job: moduleRef.get(WebhookSecretRotationJob),
    credentials: moduleRef.get(CredentialsService),
    updaters: moduleRef.get(WebhookSecretUpdaterRegistry),
    ds,
    versionRows: (credentialId) => ds.getRepository(WebhookSecretVersionEntity).find({ where: { credentialId }, order: { createdAt: 'ASC', credentialVersion: 'ASC' } }),
    persistedText: async () =>
      JSON.stringify([await ds.getRepository(OutboxEventEntity).find(), await ds.getRepository(AuditLogEntry).find()]),
  };
}
