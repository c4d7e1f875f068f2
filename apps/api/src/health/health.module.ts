import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { AuditHealthIndicator } from './audit.health';
import { HealthController } from './health.controller';

@Module({ imports: [TerminusModule], controllers: [HealthController], providers: [AuditHealthIndicator] })
export class HealthModule {}
