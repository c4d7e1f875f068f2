import { Module, type Abstract, type Provider, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { AuditModule } from '@app/audit';
import type { OperationContext } from '@app/common';
import { PersistenceModule } from '@app/common';
import { CredentialsModule } from '@app/credentials';
import { RotationModule } from '@app/rotation';
import { AppConfigModule, loadAppConfigResolvingReferences, persistenceOptions, VaultModule, type AppConfig } from '@app/api-host';
import { COMMAND_CONTEXT_OPTIONS } from '../cli-output';
import { commandDatabaseModule, refuseOlderSchema } from './command-database';

/**
 * The audit and credentials libs as every command configures them from the host's config: the host's
 * audit settings without its scheduled jobs (retention, anchoring: the host runs those).
 */
export function commandLibModules(config: AppConfig) {
  return [
    AuditModule.forRoot({ failClosed: config.audit.failClosed, preparedStatements: config.audit.preparedStatements, sqliteWriteWorker: config.audit.sqliteWriteWorker, retention: { enabled: false }, anchor: { enabled: false }, isGlobal: true }),
    CredentialsModule.forRoot({
      isGlobal: true,
      integrations: config.credentials.integrations,
      vault: { namePrefix: config.credentials.vaultSecretPrefix },
      envelope: config.credentials.envelope,
      // The host's grace period and bound (`credentials:orphan-versions` runs it once), never scheduled here.
      orphanVersions: { ...config.credentials.orphanVersions, enabled: false },
    }),
  ];
}

/**
 * The credentials and rotation libs with the host's database and vault, configured from the host's
 * environment exactly as the host is (Key Vault references resolved), jobs not scheduled and events
 * not dispatched (the host's dispatcher delivers them): commands call the services once. Needs an
 * external vault (KEY_VAULT_URL) while the host runs: the embedded one belongs to the running host. A schema older
 * than this version is refused before anything opens (`refuseOlderSchema`).
 */
export async function withHostLibs<T>(
  work: (get: <S>(type: Type<S> | Abstract<S>) => S) => Promise<T>,
  options: { providers?: Provider[]; /** Throws when the host's config cannot run the command: before any database or vault is opened. */ requires?: (config: AppConfig) => void } = {},
): Promise<T> {
  const config = await loadAppConfigResolvingReferences(process.env);
  options.requires?.(config);
  await refuseOlderSchema(config);

  @Module({
    imports: [
      AppConfigModule.forRoot(config),
      commandDatabaseModule(),
      EventEmitterModule.forRoot({ wildcard: false, delimiter: '.' }),
      PersistenceModule.forRoot(persistenceOptions(config, { dispatch: false })),
      VaultModule,
      ...commandLibModules(config),
      // The host's webhook options (the overlap window of an activation is the host's), no job scheduled.
      RotationModule.forRoot({
        expiryMonitor: { enabled: false },
        rotationCheck: { enabled: false },
        webhooks: { ...config.rotation.webhooks, job: { ...config.rotation.webhooks.job, enabled: false } },
      }),
    ],
    providers: options.providers ?? [],
  })
  class HostLibsCliModule {}

  const app = await NestFactory.createApplicationContext(HostLibsCliModule, COMMAND_CONTEXT_OPTIONS);
  try {
    return await work((type) => app.get(type));
  } finally {
    await app.close();
  }
}

/** The operation context of a CLI command: the tenant given, the operator's login as the actor. */
export const operatorContext = (tenantId: string): OperationContext => ({ tenantId, actor: { id: `cli:${process.env.USER ?? 'operator'}` } });
