import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { OAuthRefreshModuleOptions } from './oauth-refresh.options';

export const {
  ConfigurableModuleClass: OAuthRefreshConfigurableModule,
  MODULE_OPTIONS_TOKEN: OAUTH_REFRESH_MODULE_OPTIONS,
  OPTIONS_TYPE: OAUTH_REFRESH_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: OAUTH_REFRESH_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<OAuthRefreshModuleOptions>({ moduleName: 'OAuthRefresh' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();

/** For `OAuthRefreshModule.forRootAsync({ useClass | useExisting })`: `create()` returns the options, as for every lib module. */
export interface OAuthRefreshOptionsFactory {
  create(): OAuthRefreshModuleOptions | Promise<OAuthRefreshModuleOptions>;
}
