import { ConfigurableModuleBuilder } from '@nestjs/common';
import { AuditService } from '@app/audit';
import { requireHostModules, requireOptionsSource } from '@app/common';
import { CredentialExpiryScanner, CredentialsService } from '@app/credentials';
import { OAuthRefreshConfigurationError } from './errors/oauth-refresh.errors';
import type { OAuthRefreshModuleOptions } from './oauth-refresh.options';

/** CredentialsModule and AuditModule, checked: a missing or non-global one fails bootstrap with our error, not Nest's. */
export const OAUTH_REFRESH_HOST_MODULES = requireHostModules(
  'OAuthRefreshModule',
  [
    { module: 'CredentialsModule', entry: 'credentials', tokens: [CredentialsService, CredentialExpiryScanner] },
    { module: 'AuditModule', entry: 'audit', tokens: [AuditService] },
  ],
  (m) => new OAuthRefreshConfigurationError(m),
);

export const {
  ConfigurableModuleClass: OAuthRefreshConfigurableModule,
  MODULE_OPTIONS_TOKEN: OAUTH_REFRESH_MODULE_OPTIONS,
  OPTIONS_TYPE: OAUTH_REFRESH_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: OAUTH_REFRESH_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<OAuthRefreshModuleOptions>({ moduleName: 'OAuthRefresh' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => OAUTH_REFRESH_HOST_MODULES.into({ ...definition, global: extras.isGlobal }))
  .build();
// A forRootAsync naming no source of its options fails when called, naming OAuthRefreshModule (not Nest's "can't resolve dependencies").
requireOptionsSource(OAuthRefreshConfigurableModule, 'OAuthRefreshModule', (m) => new OAuthRefreshConfigurationError(m));

/** For `OAuthRefreshModule.forRootAsync({ useClass | useExisting })`: `create()` returns the options, as for every lib module. */
export interface OAuthRefreshOptionsFactory {
  create(): OAuthRefreshModuleOptions | Promise<OAuthRefreshModuleOptions>;
}
