import { type DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ScheduledJobsModule, provideEntityCheck, provideLibClock, provideSingleRegistration } from '@app/common';
import { AuditConfigurationError } from './errors/audit.errors';
import { AuditAnchorService } from './anchor/audit-anchor.service';
import { AuditChainVerifier } from './audit-chain.verifier';
import { AuditJobsScheduler } from './audit-jobs.scheduler';
import { AuditRetentionService } from './audit-retention.service';
import { AUDIT_CLOCK, AUDIT_MODULE_OPTIONS, AUDIT_RESOLVED_OPTIONS, AuditConfigurableModule, AUDIT_OPTIONS_TYPE } from './audit.module-definition';
import { AuditModuleOptions, resolveAuditOptions } from './audit.options';
import { AuditService } from './audit.service';
import { AUDIT_ENTITIES } from './audit.persistence';
import { AuditQueries } from './audit.queries';
import { AuditRepository } from './audit.repository';
import { AuditWriter } from './audit.writer';
import { CHAIN_WRITER_PROVIDER } from './internal/chain-writer';

/**
 * The audit log. The host registers TypeORM (with `AUDIT_ENTITIES` and `AUDIT_MIGRATIONS`),
 * `EventEmitterModule.forRoot()` and, when retention or anchoring is enabled, `ScheduleModule.forRoot()`;
 * optionally a global `DistributedLock` and `Clock` provider (or the `clock` option), a global `AuditAnchorStore` (anchoring),
 * and a global `SuspiciousActivityCounters` (suspicious-activity counters shared by replicas; in process without one).
 * Its jobs run through `ScheduledJobs` (libs/common), whose status the host can publish.
 *
 * ```ts
 * AuditModule.forRoot({ retention: { days: 30 } })
 * AuditModule.forRootAsync({ inject: [ConfigService], useFactory: (c) => c.getOrThrow('audit') })
 * ```
 */
@Module({
  imports: [TypeOrmModule.forFeature(AUDIT_ENTITIES), ScheduledJobsModule],
  providers: [
    provideSingleRegistration(Symbol('AUDIT_REGISTERED_ONCE'), () => AuditModule, 'AuditModule', (m) => new AuditConfigurationError(m)),
    {
      provide: AUDIT_RESOLVED_OPTIONS,
      useFactory: (options: AuditModuleOptions) => resolveAuditOptions(options),
      inject: [AUDIT_MODULE_OPTIONS],
    },
    provideLibClock(AUDIT_CLOCK, AUDIT_RESOLVED_OPTIONS),
    provideEntityCheck(Symbol('AUDIT_SCHEMA_CHECKED'), 'AuditModule', AUDIT_ENTITIES, { entities: 'AUDIT_ENTITIES', migrations: 'AUDIT_MIGRATIONS' }, (m) => new AuditConfigurationError(m)),
    CHAIN_WRITER_PROVIDER,
    AuditRepository,
    AuditWriter,
    AuditQueries,
    AuditChainVerifier,
    AuditService,
    AuditRetentionService,
    AuditAnchorService,
    AuditJobsScheduler,
  ],
  exports: [AuditService, AuditRetentionService, AuditAnchorService],
})
export class AuditModule extends AuditConfigurableModule {
  /** Every option has a default, so the options may be left out: `AuditModule.forRoot()` is `forRoot({})`. */
  static override forRoot(options: typeof AUDIT_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
