import { Module, type Provider } from '@nestjs/common';
import { AuditService } from '@app/audit';
import { provideLibClock, provideSingleRegistration, requireHostModules } from '@app/common';
import { KeyVaultKeysProvider } from '@app/key-vault';
import { KeysError, KeysErrorCode } from './errors/keys.errors';
import { KEYS_CLOCK, KEYS_RESOLVED_OPTIONS } from './keys.constants';
import { KEYS_MODULE_OPTIONS, KeysConfigurableModule } from './keys.module-definition';
import { resolveKeysOptions, type KeysModuleOptions } from './keys.options';
import { KeysService } from './keys.service';
import { KeysMetrics } from './metrics/keys.metrics';

/** KeyVaultModule and AuditModule, checked: a missing or non-global one fails bootstrap with our error, not Nest's. */
const hostModules = requireHostModules(
  'KeysModule',
  [
    { module: 'KeyVaultModule', entry: 'key-vault', tokens: [KeyVaultKeysProvider] },
    { module: 'AuditModule', entry: 'audit', tokens: [AuditService] },
  ],
  (m) => new KeysError(KeysErrorCode.KEYS_CONFIGURATION, m),
);

const providers: Provider[] = [
  ...hostModules.providers,
  provideSingleRegistration(Symbol('KEYS_REGISTERED_ONCE'), () => KeysModule, 'KeysModule', (m) => new KeysError(KeysErrorCode.KEYS_CONFIGURATION, m)),
  {
    // Validated once, here: bad options fail bootstrap with a KEYS_CONFIGURATION error listing every problem.
    provide: KEYS_RESOLVED_OPTIONS,
    useFactory: (options: KeysModuleOptions) => resolveKeysOptions(options),
    inject: [KEYS_MODULE_OPTIONS],
  },
  provideLibClock(KEYS_CLOCK, KEYS_RESOLVED_OPTIONS),
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
  imports: hostModules.imports,
  providers,
  exports: [KeysService, KeysMetrics],
})
export class KeysModule extends KeysConfigurableModule {}
