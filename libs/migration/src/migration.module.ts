import { Module, type Provider } from '@nestjs/common';
import { AuditService } from '@app/audit';
import { PERSISTENCE_HOST_MODULE, provideEntityCheck, provideLibClock, provideSingleRegistration, requireHostModules } from '@app/common';
import { CredentialsService } from '@app/credentials';
import { MigrationConfigurationError } from './errors/migration.errors';
import { MIGRATION_ENTITIES } from './migration.persistence';
import { MigrationCheckpointRepository } from './checkpoint/migration-checkpoint.repository';
import { MIGRATION_CLOCK, MIGRATION_RESOLVED_OPTIONS } from './migration.constants';
import { MIGRATION_MODULE_OPTIONS, MigrationConfigurableModule } from './migration.module-definition';
import { resolveMigrationOptions, type MigrationModuleOptions } from './migration.options';
import { ConnectionMigrator } from './runner/connection-migrator';
import { MigrationRunner } from './runner/migration.runner';

/** CredentialsModule, AuditModule and PersistenceModule, checked: a missing or non-global one fails bootstrap with our error, not Nest's. */
const hostModules = requireHostModules(
  'MigrationModule',
  [
    { module: 'CredentialsModule', entry: 'credentials', tokens: [CredentialsService] },
    { module: 'AuditModule', entry: 'audit', tokens: [AuditService] },
    PERSISTENCE_HOST_MODULE,
  ],
  (m) => new MigrationConfigurationError(m),
);

const providers: Provider[] = [
  ...hostModules.providers,
  provideSingleRegistration(Symbol('MIGRATION_REGISTERED_ONCE'), () => MigrationModule, 'MigrationModule', (m) => new MigrationConfigurationError(m)),
  {
    // Validated once, here: bad options fail bootstrap with one CONFIGURATION error (8001), never quoting a key.
    provide: MIGRATION_RESOLVED_OPTIONS,
    useFactory: (options: MigrationModuleOptions) => resolveMigrationOptions(options),
    inject: [MIGRATION_MODULE_OPTIONS],
  },
  provideLibClock(MIGRATION_CLOCK, MIGRATION_RESOLVED_OPTIONS),
  provideEntityCheck(Symbol('MIGRATION_SCHEMA_CHECKED'), 'MigrationModule', MIGRATION_ENTITIES, { entities: 'MIGRATION_ENTITIES', migrations: 'MIGRATION_MIGRATIONS' }, (m) => new MigrationConfigurationError(m)),
  MigrationCheckpointRepository,
  ConnectionMigrator,
  MigrationRunner,
];

/**
 * Moves legacy AES-256-GCM credentials into the vault through `CredentialsService`.
 *
 * Needs from the host (global): `CredentialsService` (CredentialsModule with `isGlobal: true`),
 * `AuditService`, `PersistenceModule` (TransactionRunner, Outbox), and `MIGRATION_ENTITIES` /
 * `MIGRATION_MIGRATIONS` in its TypeOrmModule.
 *
 * ```ts
 * MigrationModule.forRoot({ keys: [currentKeyHex, previousKeyHex], batchSize: 50 })
 * MigrationModule.forRootAsync({ inject: [ConfigService], useFactory: (c: ConfigService) => c.getOrThrow('migration') })
 * ```
 */
@Module({ imports: hostModules.imports, providers, exports: [MigrationRunner] })
export class MigrationModule extends MigrationConfigurableModule {}
