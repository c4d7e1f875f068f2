import { Module } from '@nestjs/common';
import { OAuthProviderConfig, OAuthRefreshModule } from '@app/oauth-refresh';
import { APP_CONFIG, AppConfig } from '../config/app.config';
import { OAuthController } from './oauth.controller';

/** The OAuth refresh lib configured from OAUTH_* variables, and its HTTP surface. */
@Module({
  imports: [
    OAuthRefreshModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (c: AppConfig) => ({
        providers: c.oauth.providers as unknown as OAuthProviderConfig[],
        refreshAheadMs: c.oauth.refreshAheadMs,
        proactive: { enabled: c.oauth.proactive.enabled, cronTime: c.oauth.proactive.cronTime },
      }),
    }),
  ],
  controllers: [OAuthController],
})
export class OAuthHttpModule {}
