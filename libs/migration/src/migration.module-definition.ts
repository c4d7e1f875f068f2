import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { MigrationModuleOptions } from './migration.options';

export const {
  ConfigurableModuleClass: MigrationConfigurableModule,
  MODULE_OPTIONS_TOKEN: MIGRATION_MODULE_OPTIONS,
  OPTIONS_TYPE: MIGRATION_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: MIGRATION_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<MigrationModuleOptions>({ moduleName: 'Migration' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();

/** For `MigrationModule.forRootAsync({ useClass | useExisting })`: `create()` returns the options, as for every lib module. */
export interface MigrationOptionsFactory {
  create(): MigrationModuleOptions | Promise<MigrationModuleOptions>;
}
