import { Module, type Provider } from '@nestjs/common';
import { provideEntityCheck, provideLibClock, provideSingleRegistration } from '@app/common';
import { MigrationConfigurationError } from './errors/migration.errors';
import { MIGRATION_ENTITIES } from './migration.persistence';
import { MigrationCheckpointRepository } from './checkpoint/migration-checkpoint.repository';
import { MIGRATION_CLOCK, MIGRATION_RESOLVED_OPTIONS } from './migration.constants';
import { MIGRATION_MODULE_OPTIONS, MigrationConfigurableModule, MIGRATION_HOST_MODULES } from './migration.module-definition';
import { resolveMigrationOptions, type MigrationModuleOptions } from './migration.options';
import { ConnectionMigrator } from './runner/connection-migrator';
import { MigrationRunner } from './runner/migration.runner';

const providers: Provider[] = [
  ...MIGRATION_HOST_MODULES.providers,
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
@Module({ providers, exports: [MigrationRunner] })
export class MigrationModule extends MigrationConfigurableModule {}
