import { type DynamicModule, Module, type Provider } from '@nestjs/common';
import { createDistributedLock, DistributedLock, provideEntityCheck, provideLibClock, provideSingleRegistration, ScheduledJobsModule } from '@app/common';
import { DataSource } from 'typeorm';
import { ReadAuditCoalescer } from './audit/read-audit-coalescer';
import { CREDENTIALS_ENTITIES } from './entities';
import { CredentialsConfigurationError } from './errors/credential-errors';
import { CredentialCache } from './cache/credential-cache';
import { CacheInvalidationRelay, CREDENTIAL_CACHE_PROVIDER } from './cache/credential-cache.provider';
import { CREDENTIALS_CLOCK, CREDENTIALS_LOCK, CREDENTIALS_RESOLVED_OPTIONS } from './credentials.constants';
import { CREDENTIALS_MODULE_OPTIONS, CredentialsConfigurableModule, CREDENTIALS_OPTIONS_TYPE, CREDENTIALS_HOST_MODULES } from './credentials.module-definition';
import { CredentialsModuleOptions, resolveCredentialsOptions } from './credentials.options';
import { CredentialExpiryScanner } from './credential-expiry.scanner';
import { CredentialQueries } from './credential.queries';
import { CredentialReader } from './credential.reader';
import { CredentialRevoker } from './credential.revoker';
import { CredentialChangeCommitter } from './credential-change.committer';
import { CredentialWriter } from './credential.writer';
import { CredentialBatchWriter } from './credential-batch.writer';
import { CredentialBatchDeleter } from './credential-batch.deleter';
import { CredentialsService } from './credentials.service';
import { CredentialEventPublisher } from './events/credential-event-publisher';
import { CredentialRepository } from './persistence/credential.repository';
import { CredentialListRepository } from './persistence/credential-list.repository';
import { CredentialScanRepository } from './persistence/credential-scan.repository';
import { CredentialVersionRepository } from './persistence/credential-version.repository';
import { CREDENTIALS_PERSISTENCE_PROVIDER, CredentialsPersistence } from './persistence/credentials-persistence';
import { EnvelopeValueRepository } from './persistence/envelope-value.repository';
import { WrappedDataKeyRepository } from './persistence/wrapped-data-key.repository';
import { DataKeyService } from './stores/data-key.service';
import { EnvelopeValueStore } from './stores/envelope-value-store';
import { KeyEncryptionKeyHealthCheck } from './stores/key-encryption-key-health-check';
import { ValueStores } from './stores/value-stores';
import { VaultValueStore } from './stores/vault-value-store';
import { VaultValueDeletion } from './stores/vault-value-deletion';
import { CredentialOrphanVersions } from './orphans/orphan-versions.service';
import { OrphanVersionsScheduler } from './orphans/orphan-versions.scheduler';

/** A repository built on the host's TransactionRunner (checked by CREDENTIALS_PERSISTENCE_PROVIDER). */
const repository = (type: new (runner: CredentialsPersistence['runner']) => unknown): Provider => ({
  provide: type,
  useFactory: (p: CredentialsPersistence) => new type(p.runner),
  inject: [CredentialsPersistence],
});

/** Provided once the host's DataSource was checked for the lib's entities. */
const CREDENTIALS_SCHEMA_CHECKED = Symbol('CREDENTIALS_SCHEMA_CHECKED');

const providers: Provider[] = [
  ...CREDENTIALS_HOST_MODULES.providers,
  provideSingleRegistration(Symbol('CREDENTIALS_REGISTERED_ONCE'), () => CredentialsModule, 'CredentialsModule', (m) => new CredentialsConfigurationError(m)),
  {
    // Validated once, here: bad options fail bootstrap with a CONFIGURATION error listing every problem.
    provide: CREDENTIALS_RESOLVED_OPTIONS,
    useFactory: (options: CredentialsModuleOptions) => resolveCredentialsOptions(options),
    inject: [CREDENTIALS_MODULE_OPTIONS],
  },
  provideLibClock(CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS),
  {
    // The orphan-versions job's: the host's DistributedLock, else one on its DataSource; null without either (the job
    // then refuses to run, naming what is missing — not here, so that the host module checks speak first).
    provide: CREDENTIALS_LOCK,
    useFactory: (lock?: DistributedLock, dataSource?: DataSource): DistributedLock | null => lock ?? (dataSource ? createDistributedLock(dataSource) : null),
    inject: [
      { token: DistributedLock, optional: true },
      { token: DataSource, optional: true },
    ],
  },
  provideEntityCheck(CREDENTIALS_SCHEMA_CHECKED, 'CredentialsModule', CREDENTIALS_ENTITIES, { entities: 'CREDENTIALS_ENTITIES', migrations: 'CREDENTIALS_MIGRATIONS' }, (m) => new CredentialsConfigurationError(m)),
  CREDENTIALS_PERSISTENCE_PROVIDER,
  CREDENTIAL_CACHE_PROVIDER,
  CacheInvalidationRelay,
  repository(CredentialRepository),
  repository(CredentialListRepository),
  repository(CredentialScanRepository),
  repository(CredentialVersionRepository),
  repository(EnvelopeValueRepository),
  repository(WrappedDataKeyRepository),
  ReadAuditCoalescer,
  KeyEncryptionKeyHealthCheck,
  DataKeyService,
  VaultValueStore,
  VaultValueDeletion,
  EnvelopeValueStore,
  ValueStores,
  CredentialEventPublisher,
  CredentialChangeCommitter,
  CredentialWriter,
  CredentialBatchWriter,
  CredentialBatchDeleter,
  CredentialReader,
  CredentialQueries,
  CredentialRevoker,
  CredentialExpiryScanner,
  CredentialsService,
  CredentialOrphanVersions,
  OrphanVersionsScheduler,
];

/**
 * Credentials of many tenants: store / get / list / rotate / rollback / delete, per-type validation,
 * Key Vault or envelope value stores, a read cache (in process, or L1 + an encrypted Redis L2 shared by
 * the replicas, with evictions fanned out over Redis pub/sub or PostgreSQL NOTIFY) and durable domain events.
 *
 * Needs from the host (registered once, globally): `TypeOrmModule.forRoot({ entities: [...CREDENTIALS_ENTITIES, ...AUDIT_ENTITIES,
 * ...OUTBOX_ENTITIES], migrations: [...CREDENTIALS_MIGRATIONS, ...AUDIT_MIGRATIONS, ...OUTBOX_MIGRATIONS] })`,
 * `PersistenceModule.forRoot()` (@app/common: the transaction runner and the outbox; without it bootstrap fails
 * with a CredentialsConfigurationError saying so), `KeyVaultModule.forRoot({ ..., isGlobal: true })`,
 * `AuditModule.forRoot({ ..., isGlobal: true })` and, for domain events on the bus, `EventEmitterModule.forRoot()`;
 * with `orphanVersions.enabled`, `ScheduleModule.forRoot()`.
 *
 * ```ts
 * CredentialsModule.forRoot({ cache: { ttlMs: 300_000, maxStaleMs: 60_000 } })
 * CredentialsModule.forRoot({ cache: { store: { type: 'redis', client: redis, subscriber: () => redis.duplicate(), keyPrefix: 'cv:cache:' } } })
 * CredentialsModule.forRootAsync({ inject: [ConfigService], useFactory: (c: ConfigService) => c.getOrThrow('credentials'), isGlobal: true })
 * ```
 */
@Module({
  imports: [ScheduledJobsModule],
  providers,
  exports: [CredentialsService, CredentialExpiryScanner, CredentialOrphanVersions, CredentialCache, DataKeyService, KeyEncryptionKeyHealthCheck, EnvelopeValueStore, ReadAuditCoalescer, VaultValueDeletion],
})
export class CredentialsModule extends CredentialsConfigurableModule {
  /** Every option has a default, so the options may be left out: `CredentialsModule.forRoot()` is `forRoot({})`. */
  static override forRoot(options: typeof CREDENTIALS_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
