import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerModule } from '@nestjs/throttler';
import { APP_CONFIG, AppConfig } from '../config/app.config';
import { AuthGuard } from './auth.guard';
import { AuthService } from './auth.service';
import { FixedWindowThrottlerStorage } from './fixed-window-throttler.storage';
import { RedisThrottlerStorage } from './redis-throttler.storage';
import { SharedStateRedis } from './shared-state-redis';

@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      inject: [APP_CONFIG, SharedStateRedis],
      useFactory: (c: AppConfig, shared: SharedStateRedis) => ({
        throttlers: [{ ttl: 60_000, limit: c.rateLimit.perMinute }],
        // The default storage filters every hit of the window on each request; these count. With
        // REDIS_URL the limit holds across replicas (per process while Redis cannot answer).
        // Nest destroys the storage with the ThrottlerModule (it becomes that module's storage provider).
        storage: shared.enabled ? new RedisThrottlerStorage(shared) : new FixedWindowThrottlerStorage(),
      }),
    }),
  ],
  providers: [
    AuthService,
    // The one global guard: authentication, scopes, the rate limit per client, then body parsing. Also a provider of
    // its own: the host's routing hook counts the requests no route serves with it (AuthGuard.countUnmatched).
    AuthGuard,
    { provide: APP_GUARD, useExisting: AuthGuard },
  ],
  exports: [AuthService],
})
export class AuthModule {}
