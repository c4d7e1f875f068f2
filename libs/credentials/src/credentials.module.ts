import { Module, type Provider } from '@nestjs/common';
import { Clock, provideLibClock } from '@app/common';
import { ReadAuditCoalescer } from './audit/read-audit-coalescer';
import { CredentialCache } from './cache/credential-cache';
import { LruCredentialCache } from './cache/lru-credential-cache';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from './credentials.constants';
import { CREDENTIALS_MODULE_OPTIONS, CredentialsConfigurableModule } from './credentials.module-definition';
import { CredentialsModuleOptions, ResolvedCredentialsOptions, resolveCredentialsOptions } from './credentials.options';
import { CredentialsService } from './credentials.service';
import { DbGate } from './persistence/db-gate';
import { DataKeyService } from './stores/data-key.service';
import { EnvelopeValueStore } from './stores/envelope-value-store';
import { VaultValueStore } from './stores/vault-value-store';

const providers: Provider[] = [
  {
    // Validated once, here: bad options fail bootstrap with a CONFIGURATION error listing every problem.
    provide: CREDENTIALS_RESOLVED_OPTIONS,
    useFactory: (options: CredentialsModuleOptions) => resolveCredentialsOptions(options),
    inject: [CREDENTIALS_MODULE_OPTIONS],
  },
  provideLibClock(CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS),
  {
    provide: CredentialCache,
    useFactory: (options: ResolvedCredentialsOptions, clock: Clock): CredentialCache => new LruCredentialCache(options.cache, clock),
    inject: [CREDENTIALS_RESOLVED_OPTIONS, CREDENTIALS_CLOCK],
  },
  DbGate,
  ReadAuditCoalescer,
  DataKeyService,
  VaultValueStore,
  EnvelopeValueStore,
  CredentialsService,
];

/**
 * Credentials of many tenants: store / get / list / rotate / rollback / delete, per-type validation,
 * Key Vault or envelope value stores, an in-process read cache and domain events.
 *
 * Needs from the host (registered once, globally): `TypeOrmModule.forRoot({ entities: [...CREDENTIALS_ENTITIES, ...AUDIT_ENTITIES],
 * migrations: [...CREDENTIALS_MIGRATIONS, ...AUDIT_MIGRATIONS] })`, `KeyVaultModule.forRoot({ ..., isGlobal: true })`,
 * `AuditModule.forRoot({ ..., isGlobal: true })` and, for domain events, `EventEmitterModule.forRoot()`.
 *
 * ```ts
 * CredentialsModule.forRoot({ cache: { ttlMs: 300_000, maxStaleMs: 60_000 } })
 * CredentialsModule.forRootAsync({ inject: [ConfigService], useFactory: (c: ConfigService) => c.get('credentials'), isGlobal: true })
 * ```
 */
@Module({
  providers,
  exports: [CredentialsService, CredentialCache, DataKeyService, EnvelopeValueStore, ReadAuditCoalescer],
})
export class CredentialsModule extends CredentialsConfigurableModule {}
