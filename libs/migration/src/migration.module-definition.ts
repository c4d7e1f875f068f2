import { ConfigurableModuleBuilder } from '@nestjs/common';
import { AuditService } from '@app/audit';
import { PERSISTENCE_HOST_MODULE, requireHostModules, requireOptionsSource } from '@app/common';
import { CredentialsService } from '@app/credentials';
import { MigrationConfigurationError } from './errors/migration.errors';
import type { MigrationModuleOptions } from './migration.options';

/** CredentialsModule, AuditModule and PersistenceModule, checked: a missing or non-global one fails bootstrap with our error, not Nest's. */
export const MIGRATION_HOST_MODULES = requireHostModules(
  'MigrationModule',
  [
    { module: 'CredentialsModule', entry: 'credentials', tokens: [CredentialsService] },
    { module: 'AuditModule', entry: 'audit', tokens: [AuditService] },
    PERSISTENCE_HOST_MODULE,
  ],
  (m) => new MigrationConfigurationError(m),
);

export const {
  ConfigurableModuleClass: MigrationConfigurableModule,
  MODULE_OPTIONS_TOKEN: MIGRATION_MODULE_OPTIONS,
  OPTIONS_TYPE: MIGRATION_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: MIGRATION_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<MigrationModuleOptions>({ moduleName: 'Migration' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => MIGRATION_HOST_MODULES.into({ ...definition, global: extras.isGlobal }))
  .build();
// A forRootAsync naming no source of its options fails when called, naming MigrationModule (not Nest's "can't resolve dependencies").
requireOptionsSource(MigrationConfigurableModule, 'MigrationModule', (m) => new MigrationConfigurationError(m));

/** For `MigrationModule.forRootAsync({ useClass | useExisting })`: `create()` returns the options, as for every lib module. */
export interface MigrationOptionsFactory {
  create(): MigrationModuleOptions | Promise<MigrationModuleOptions>;
}
