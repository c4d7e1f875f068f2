import { type DynamicModule, Module, type Provider } from '@nestjs/common';
import { createDistributedLock, DistributedLock, provideLibClock, provideSingleRegistration } from '@app/common';
import { DataSource } from 'typeorm';
import { KeysError, KeysErrorCode } from './errors/keys.errors';
import { KEYS_CLOCK, KEYS_LOCK, KEYS_RESOLVED_OPTIONS } from './keys.constants';
import { KEYS_MODULE_OPTIONS, KeysConfigurableModule, KEYS_OPTIONS_TYPE, KEYS_HOST_MODULES } from './keys.module-definition';
import { resolveKeysOptions, type KeysModuleOptions } from './keys.options';
import { KeysService } from './keys.service';
import { KeysMetrics } from './metrics/keys.metrics';

const providers: Provider[] = [
  ...KEYS_HOST_MODULES.providers,
  provideSingleRegistration(Symbol('KEYS_REGISTERED_ONCE'), () => KeysModule, 'KeysModule', (m) => new KeysError(KeysErrorCode.KEYS_CONFIGURATION, m)),
  {
    // Validated once, here: bad options fail bootstrap with a KEYS_CONFIGURATION error listing every problem.
    provide: KEYS_RESOLVED_OPTIONS,
    useFactory: (options: KeysModuleOptions) => resolveKeysOptions(options),
    inject: [KEYS_MODULE_OPTIONS],
  },
  provideLibClock(KEYS_CLOCK, KEYS_RESOLVED_OPTIONS),
  {
    // Creates of one name exclusive across replicas; a host with neither (a unit test) creates unlocked.
    provide: KEYS_LOCK,
    useFactory: (lock?: DistributedLock, dataSource?: DataSource): DistributedLock | null => lock ?? (dataSource ? createDistributedLock(dataSource) : null),
    inject: [
      { token: DistributedLock, optional: true },
      { token: DataSource, optional: true },
    ],
  },
  KeysMetrics,
  KeysService,
];

/**
 * Tenant-scoped Key Vault keys and cryptography (`KeysService`), audited and measured.
 *
 * Needs from the host (registered globally): `KeyVaultModule.forRoot({ ..., isGlobal: true })` (its
 * `KeyVaultKeysProvider`: the same identity, TLS and resilience as the secrets side) and
 * `AuditModule.forRoot({ ..., isGlobal: true })`.
 *
 * ```ts
 * KeysModule.forRoot({ verify: 'local' })
 * KeysModule.forRootAsync({ inject: [ConfigService], useFactory: (c: ConfigService) => c.getOrThrow('keys'), isGlobal: true })
 * ```
 */
@Module({
  providers,
  exports: [KeysService, KeysMetrics],
})
export class KeysModule extends KeysConfigurableModule {
  /** Every option has a default, so the options may be left out: `KeysModule.forRoot()` is `forRoot({})`. */
  static override forRoot(options: typeof KEYS_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
