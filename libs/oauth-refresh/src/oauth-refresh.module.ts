import { type DynamicModule, Module, type Provider } from '@nestjs/common';
import { DistributedLock, LockLeases, ScheduledJobsModule, createDistributedLock, provideLibClock, provideSingleRegistration } from '@app/common';
import { DataSource } from 'typeorm';
import { OAuthTokenClient } from './client/oauth-token-client';
import { Oauth4webapiTokenClient } from './client/oauth4webapi-token-client';
import { OAuthRefreshConfigurationError } from './errors/oauth-refresh.errors';
import { OAUTH_REFRESH_CLOCK, OAUTH_REFRESH_LEASES, OAUTH_REFRESH_LOCK, OAUTH_REFRESH_RESOLVED_OPTIONS } from './oauth-refresh.constants';
import { OAUTH_REFRESH_MODULE_OPTIONS, OAuthRefreshConfigurableModule, OAUTH_REFRESH_OPTIONS_TYPE, OAUTH_REFRESH_HOST_MODULES } from './oauth-refresh.module-definition';
import { OAuthRefreshModuleOptions, resolveOAuthRefreshOptions } from './oauth-refresh.options';
import { OAuthRefreshScheduler } from './oauth-refresh.scheduler';
import { OAuthRefreshService } from './oauth-refresh.service';
import { OAuthProviderRegistry } from './providers/oauth-provider.registry';
import { CredentialsTokenStore } from './store/credentials-token-store';
import { OAuthTokenStore } from './store/oauth-token-store';

const providers: Provider[] = [
  ...OAUTH_REFRESH_HOST_MODULES.providers,
  provideSingleRegistration(Symbol('OAUTH_REFRESH_REGISTERED_ONCE'), () => OAuthRefreshModule, 'OAuthRefreshModule', (m) => new OAuthRefreshConfigurationError(m)),
  {
    // Validated once, here: bad options fail bootstrap with a CONFIGURATION error listing every problem.
    provide: OAUTH_REFRESH_RESOLVED_OPTIONS,
    useFactory: (options: OAuthRefreshModuleOptions) => resolveOAuthRefreshOptions(options),
    inject: [OAUTH_REFRESH_MODULE_OPTIONS],
  },
  {
    provide: OAUTH_REFRESH_LOCK,
    useFactory: (lock?: DistributedLock, dataSource?: DataSource): DistributedLock => {
      if (lock) return lock;
      if (dataSource) return createDistributedLock(dataSource);
      throw new OAuthRefreshConfigurationError('OAuthRefreshModule needs a DistributedLock provider or a TypeORM DataSource (TypeOrmModule.forRoot) in the host');
    },
    inject: [
      { token: DistributedLock, optional: true },
      { token: DataSource, optional: true },
    ],
  },
  {
    // The refresh-in-flight leases: in the host's database (cv_lock_leases, OUTBOX_MIGRATIONS); none without a DataSource.
    provide: OAUTH_REFRESH_LEASES,
    useFactory: (dataSource?: DataSource): LockLeases | null => (dataSource ? LockLeases.for(dataSource) : null),
    inject: [{ token: DataSource, optional: true }],
  },
  provideLibClock(OAUTH_REFRESH_CLOCK, OAUTH_REFRESH_RESOLVED_OPTIONS),
  { provide: OAuthTokenStore, useClass: CredentialsTokenStore },
  { provide: OAuthTokenClient, useClass: Oauth4webapiTokenClient },
  OAuthProviderRegistry,
  OAuthRefreshService,
  OAuthRefreshScheduler,
];

/**
 * OAuth access tokens that stay fresh: provider registry, refresh-ahead with single-flight and a
 * cross-replica lock, rotation-safe refresh-token storage, failure handling (`needs_reauth`,
 * cooldown) and a proactive cron job.
 *
 * Needs from the host (registered globally): `CredentialsService` (CredentialsModule with
 * `isGlobal: true`), `AuditService` (AuditModule), a TypeORM `DataSource`; optionally a
 * `DistributedLock` (default: `createDistributedLock(dataSource)` — PostgreSQL advisory locks, or
 * in-process on SQLite), an `OAuthRefreshCooldowns` shared by the replicas (default: in process), a `Clock`, `EventEmitterModule.forRoot()` for events, and
 * `ScheduleModule.forRoot()` unless `proactive.enabled` is false.
 *
 * ```ts
 * OAuthRefreshModule.forRoot({
 *   providers: [{ integrationId: 'google', issuer: 'https://accounts.google.com', clientId: '…',
 *                 clientSecret: { tenantId: 'system', credentialId: '…' } }],
 * })
 * OAuthRefreshModule.forRootAsync({ inject: [ConfigService], useFactory: (c: ConfigService) => c.getOrThrow('oauth') })
 * ```
 */
@Module({
  imports: [ScheduledJobsModule],
  providers,
  exports: [OAuthRefreshService, OAuthProviderRegistry, OAuthTokenClient],
})
export class OAuthRefreshModule extends OAuthRefreshConfigurableModule {
  /** Every option has a default, so the options may be left out: `OAuthRefreshModule.forRoot()` is `forRoot({})`. */
  static override forRoot(options: typeof OAUTH_REFRESH_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
