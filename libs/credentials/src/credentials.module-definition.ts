import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { CredentialsModuleOptions } from './credentials.options';

export const {
  ConfigurableModuleClass: CredentialsConfigurableModule,
  MODULE_OPTIONS_TOKEN: CREDENTIALS_MODULE_OPTIONS,
  OPTIONS_TYPE: CREDENTIALS_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: CREDENTIALS_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<CredentialsModuleOptions>({ moduleName: 'Credentials' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();

/** For `CredentialsModule.forRootAsync({ useClass | useExisting })`: `create()` returns the options, as for every lib module. */
export interface CredentialsOptionsFactory {
  create(): CredentialsModuleOptions | Promise<CredentialsModuleOptions>;
}
