import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerModule } from '@nestjs/throttler';
import { APP_CONFIG, AppConfig } from '../config/app.config';
import { AuthGuard } from './auth.guard';
import { AuthService } from './auth.service';
import { ClientThrottlerGuard } from './client-throttler.guard';

@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (c: AppConfig) => [{ ttl: 60_000, limit: c.rateLimit.perMinute }],
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
