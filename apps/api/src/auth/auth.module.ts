import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerModule } from '@nestjs/throttler';
import { APP_CONFIG, AppConfig } from '../config/app.config';
import { AuthGuard } from './auth.guard';
import { AuthService } from './auth.service';
import { ClientThrottlerGuard } from './client-throttler.guard';
import { FixedWindowThrottlerStorage } from './fixed-window-throttler.storage';

@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (c: AppConfig) => ({
        throttlers: [{ ttl: 60_000, limit: c.rateLimit.perMinute }],
        // The default storage filters every hit of the window on each request; this one counts.
        // Nest destroys it with the ThrottlerModule (it becomes that module's storage provider).
        storage: new FixedWindowThrottlerStorage(),
      }),
    }),
  ],
  providers: [
    AuthService,
    // Order matters: authenticate first, so the throttler can count per client.
    { provide: APP_GUARD, useClass: AuthGuard },
    { provide: APP_GUARD, useClass: ClientThrottlerGuard },
  ],
  exports: [AuthService],
})
export class AuthModule {}
