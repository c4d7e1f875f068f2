import { type DynamicModule, Module, type Provider } from '@nestjs/common';
import {
  DistributedLock,
  HostPersistence,
  PERSISTENCE_RESOLVED_OPTIONS,
  ScheduledJobsModule,
  createDistributedLock,
  hostPersistenceTokens,
  provideEntityCheck,
  provideHostPersistence,
  provideLibClock,
  provideSingleRegistration,
  type ResolvedPersistenceOptions,
} from '@app/common';
import { DataSource } from 'typeorm';
import { RotationConfigurationError } from './errors/rotation.errors';
import { NOTIFICATION_CLOCK, NOTIFICATION_EXPORTS, NOTIFICATION_OPTIONS, NOTIFICATION_PROVIDERS, notificationHostOptions } from './notifications';
import { RotationHandlerRegistry } from './handlers/rotation-handler.registry';
import { RotationHistoryRepository } from './history/rotation-history.repository';
import { ExpiryMonitorService } from './jobs/expiry-monitor.service';
import { RotationCheckService } from './jobs/rotation-check.service';
import { RotationNoticeRepository } from './jobs/rotation-notice.repository';
import { RotationScheduler } from './jobs/rotation.scheduler';
import { RotationPolicyRepository } from './policies/rotation-policy.repository';
import { RotationPolicyService } from './policies/rotation-policy.service';
import { ROTATION_CLOCK, ROTATION_LOCK, ROTATION_RESOLVED_OPTIONS } from './rotation.constants';
import { ROTATION_MODULE_OPTIONS, RotationConfigurableModule, ROTATION_OPTIONS_TYPE, ROTATION_HOST_MODULES } from './rotation.module-definition';
import { RotationModuleOptions, resolveRotationOptions, type ResolvedRotationOptions } from './rotation.options';
import { RevocationService } from './revoke/revocation.service';
import { RotationQueries } from './rotation.queries';
import { PendingRotationCleanup } from './pending/pending-rotation-cleanup';
import { PendingRotationValues } from './pending/pending-rotation-values';
import { RotationService } from './rotation.service';
import { WEBHOOK_PROVIDERS } from './webhooks';
import { ROTATION_ENTITIES } from './rotation.schema';

/** The host's PersistenceModule, checked (the host module check of @app/common). */
class RotationPersistence extends HostPersistence {}

/** The check in a module of its own, so that it sees the host's tokens, not the lib's aliases of them. */
@Module({
  providers: [provideHostPersistence(RotationPersistence, 'RotationModule', (message) => new RotationConfigurationError(message))],
  exports: [RotationPersistence],
})
class RotationPersistenceCheckModule {}

/** Provided once the host's DataSource was checked for the lib's entities. */
const ROTATION_SCHEMA_CHECKED = Symbol('ROTATION_SCHEMA_CHECKED');

const providers: Provider[] = [
  ...ROTATION_HOST_MODULES.providers,
  provideSingleRegistration(Symbol('ROTATION_REGISTERED_ONCE'), () => RotationModule, 'RotationModule', (m) => new RotationConfigurationError(m)),
  {
    // Validated once, here: bad options fail bootstrap with one CONFIGURATION error listing every problem,
    // those against the host's outbox included (when this process dispatches it).
    provide: ROTATION_RESOLVED_OPTIONS,
    useFactory: (options: RotationModuleOptions, persistence?: ResolvedPersistenceOptions) => resolveRotationOptions(options, notificationHostOptions(persistence)),
    inject: [ROTATION_MODULE_OPTIONS, { token: PERSISTENCE_RESOLVED_OPTIONS, optional: true }],
  },
  {
    provide: ROTATION_LOCK,
    useFactory: (lock?: DistributedLock, dataSource?: DataSource): DistributedLock => {
      if (lock) return lock;
      if (dataSource) return createDistributedLock(dataSource);
      throw new RotationConfigurationError('RotationModule needs a DistributedLock provider or a TypeORM DataSource (TypeOrmModule.forRoot) in the host');
    },
    inject: [
      { token: DistributedLock, optional: true },
      { token: DataSource, optional: true },
    ],
  },
  // The host's DataSource must know the lib's tables: without them every rotation failed later with a
  // TypeORM error that named neither (`this.subQuery is not a function`, "No metadata for ...").
  provideEntityCheck(ROTATION_SCHEMA_CHECKED, 'RotationModule', ROTATION_ENTITIES, { entities: 'ROTATION_ENTITIES', migrations: 'ROTATION_MIGRATIONS' }, (m) => new RotationConfigurationError(m)),
  provideLibClock(ROTATION_CLOCK, ROTATION_RESOLVED_OPTIONS),
  // TransactionRunner, Outbox, OutboxHandlerRegistry through the check: a missing PersistenceModule is our error, not Nest's.
  ...hostPersistenceTokens(RotationPersistence),
  RotationPolicyRepository,
  RotationPolicyService,
  RotationNoticeRepository,
  RotationHistoryRepository,
  RotationHandlerRegistry,
  RotationService,
  PendingRotationValues,
  PendingRotationCleanup,
  RotationQueries,
  RevocationService,
  ExpiryMonitorService,
  RotationCheckService,
  RotationScheduler,
  ...WEBHOOK_PROVIDERS,
  // The notifications part gets the `notifications` key, resolved with the rest, and shares the clock.
  { provide: NOTIFICATION_OPTIONS, useFactory: (options: ResolvedRotationOptions) => options.notifications, inject: [ROTATION_RESOLVED_OPTIONS] },
  ...NOTIFICATION_PROVIDERS,
  { provide: NOTIFICATION_CLOCK, useExisting: ROTATION_CLOCK },
];

/**
 * Rotation policies, the expiry-monitor and rotation-check jobs, manual and automatic rotation,
 * emergency revoke; webhook-secret rotation and notifications (./webhooks, ./notifications).
 *
 * Needs from the host (registered globally): `CredentialsService` (CredentialsModule with
 * `isGlobal: true`), `AuditService` (AuditModule), `PersistenceModule.forRoot()` (TransactionRunner,
 * Outbox; without it bootstrap fails with a RotationConfigurationError saying so), a TypeORM
 * `DataSource` with `ROTATION_ENTITIES`/`ROTATION_MIGRATIONS`; optionally a `DistributedLock`, a
 * `Clock`, and `ScheduleModule.forRoot()` unless every job is disabled.
 *
 * ```ts
 * RotationModule.forRoot({ expiryMonitor: { cronTime: '0 0 * * * *' }, handlers: [{ integrationId: 'stripe', handler }] })
 * RotationModule.forRootAsync({ inject: [ConfigService], useFactory: (c: ConfigService) => c.getOrThrow('rotation') })
 * ```
 */
@Module({
  imports: [ScheduledJobsModule, RotationPersistenceCheckModule],
  providers,
  exports: [RotationPolicyService, RotationService, RotationQueries, RevocationService, RotationHandlerRegistry, ExpiryMonitorService, RotationCheckService, ...WEBHOOK_PROVIDERS, ...NOTIFICATION_EXPORTS],
})
export class RotationModule extends RotationConfigurableModule {
  /** Every option has a default, so the options may be left out: `RotationModule.forRoot()` is `forRoot({})`. */
  static override forRoot(options: typeof ROTATION_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
