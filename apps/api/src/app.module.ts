import { DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { ScheduleModule } from '@nestjs/schedule';
import { TypeOrmModule } from '@nestjs/typeorm';
import { PersistenceModule } from '@app/common';
import type { DestinationStream, Logger } from 'pino';
import { AuthModule } from './auth/auth.module';
import { SharedStateModule } from './auth/shared-state.module';
import { APP_CONFIG, AppConfig } from './config/app.config';
import { AppConfigModule } from './config/config.module';
import { CoreModule } from './core.module';
import { CredentialsHttpModule } from './credentials/credentials-http.module';
import { databaseOptions, persistenceOptions } from './database/database.options';
import { initializeHostDataSource } from './database/migrate-on-start';
import { KeysHttpModule } from './keys/keys-http.module';
import { HealthModule } from './health/health.module';
import { AllExceptionsFilter } from './http/all-exceptions.filter';
import { HostLoggingModule } from './logging/host-logger';
import { DatabasePoolMetrics } from './metrics/database-pool-metrics';
import { JobMetrics } from './metrics/job-metrics';
import { MetricsController } from './metrics/metrics.controller';
import { OpsMetrics } from './metrics/ops-metrics';
import { OAuthHttpModule } from './oauth/oauth-http.module';
import { HostRedisModule } from './redis/host-redis';
import { RotationHttpModule } from './rotation/rotation-http.module';
import { HostTelemetry, TelemetryLifecycle } from './telemetry/host-telemetry';
import { VaultModule } from './vault/vault.module';

/**
 * The reference host: global infrastructure (config, logging, database, schedule, events) is set up
 * here once; the libs only plug into it.
 */
@Module({})
export class AppModule {
  static forRoot(config: AppConfig, options: { log?: Logger; logDestination?: DestinationStream; telemetry?: HostTelemetry } = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [
        AppConfigModule.forRoot(config),
        HostLoggingModule.forRoot({ log: options.log, destination: options.logDestination }),
        TypeOrmModule.forRootAsync({ inject: [APP_CONFIG], useFactory: databaseOptions, dataSourceFactory: (o) => initializeHostDataSource(o!) }),
        EventEmitterModule.forRoot({ wildcard: false, delimiter: '.' }),
        // The transaction runner and the outbox of every lib; this process dispatches, under CoreModule's
        // DistributedLock (one replica at a time) and with its Clock.
        PersistenceModule.forRoot(persistenceOptions(config, { dispatch: true })),
        ScheduleModule.forRoot(),
        CoreModule,
        HostRedisModule,
        SharedStateModule,
        VaultModule,
        AuthModule,
        CredentialsHttpModule,
        OAuthHttpModule,
        RotationHttpModule,
        KeysHttpModule,
        HealthModule,
      ],
      controllers: [MetricsController],
      providers: [
        JobMetrics,
        OpsMetrics,
        DatabasePoolMetrics,
        { provide: HostTelemetry, useValue: options.telemetry ?? null },
        TelemetryLifecycle,
        { provide: APP_FILTER, useClass: AllExceptionsFilter },
        // Bodies are parsed by AuthModule's global guard, after authentication and the rate limit, before any pipe reads them.
      ],
    };
  }
}
