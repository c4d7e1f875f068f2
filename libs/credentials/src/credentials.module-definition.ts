import { ConfigurableModuleBuilder } from '@nestjs/common';
import { AuditService } from '@app/audit';
import { requireHostModules, requireOptionsSource } from '@app/common';
import { KeyVaultProvider } from '@app/key-vault';
import { CredentialsConfigurationError } from './errors/credential-errors';
import type { CredentialsModuleOptions } from './credentials.options';

/** KeyVaultModule and AuditModule, checked: a missing or non-global one fails bootstrap with our error, not Nest's. */
export const CREDENTIALS_HOST_MODULES = requireHostModules(
  'CredentialsModule',
  [
    { module: 'KeyVaultModule', entry: 'key-vault', tokens: [KeyVaultProvider] },
    { module: 'AuditModule', entry: 'audit', tokens: [AuditService] },
  ],
  (m) => new CredentialsConfigurationError(m),
);

export const {
  ConfigurableModuleClass: CredentialsConfigurableModule,
  MODULE_OPTIONS_TOKEN: CREDENTIALS_MODULE_OPTIONS,
  OPTIONS_TYPE: CREDENTIALS_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: CREDENTIALS_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<CredentialsModuleOptions>({ moduleName: 'Credentials' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => CREDENTIALS_HOST_MODULES.into({ ...definition, global: extras.isGlobal }))
  .build();
// A forRootAsync naming no source of its options fails when called, naming CredentialsModule (not Nest's "can't resolve dependencies").
requireOptionsSource(CredentialsConfigurableModule, 'CredentialsModule', (m) => new CredentialsConfigurationError(m));

/** For `CredentialsModule.forRootAsync({ useClass | useExisting })`: `create()` returns the options, as for every lib module. */
export interface CredentialsOptionsFactory {
  create(): CredentialsModuleOptions | Promise<CredentialsModuleOptions>;
}
