import type { DynamicModule } from '@nestjs/common';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { TypeOrmModule, type TypeOrmModuleOptions } from '@nestjs/typeorm';
import { AUDIT_ENTITIES, AUDIT_MIGRATIONS, AuditModule, type AuditModuleOptions } from '@app/audit';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS, PersistenceModule, type PersistenceModuleOptions } from '@app/common';
import { CREDENTIALS_ENTITIES, CREDENTIALS_MIGRATIONS, CredentialsModule } from '@app/credentials';
import { KeyVaultModule, type KeyVaultModuleOptions } from '@app/key-vault';
import { ROTATION_ENTITIES, ROTATION_MIGRATIONS } from '@app/rotation';
import type { KeyVaultEmulator } from '@app/keyvault-emulator';
import { Registry } from 'prom-client';
import type { DataSourceOptions } from 'typeorm';

/**
 * KeyVaultModule options for the local vault: the real SDK over HTTPS with its static credential,
 * trusting its CA, and a private metrics registry (apps re-created in one process must not share one).
 */
export function emulatorKeyVaultOptions(vault: KeyVaultEmulator, extra: Partial<KeyVaultModuleOptions> = {}): KeyVaultModuleOptions {
  return {
    vaultUrl: vault.vaultUrl,
    credential: { type: 'static' },
    tls: { caCertPem: vault.caCertPem },
    disableChallengeResourceVerification: true,
    metrics: { registry: new Registry() },
    ...extra,
  };
}

export interface CredentialsStackOptions {
  /** Where metadata and audit rows go (e.g. `createTestDatabase(kind).options`); both libs' migrations run on it. */
  database: DataSourceOptions;
  /** The vault: KeyVaultModule talks to it with the real SDK over HTTPS (static credential, its CA). */
  vault: KeyVaultEmulator;
  /** Extra KeyVaultModule options (e.g. `resilience`). */
  keyVault?: Partial<KeyVaultModuleOptions>;
  /** Extra AuditModule options. @default retention disabled */
  audit?: AuditModuleOptions;
  /** PersistenceModule options (the transaction runner and the outbox). @default dispatch on, defaults */
  persistence?: PersistenceModuleOptions;
  /** CredentialsModule options, with `isGlobal` (needed when another module of the test injects its services). */
  credentials?: Parameters<typeof CredentialsModule.forRoot>[0];
  /** Register CredentialsModule with forRoot or forRootAsync (a factory returning `credentials`). @default 'forRoot' */
  credentialsRegistration?: 'forRoot' | 'forRootAsync';
}

/**
 * The module stack a host wires under CredentialsService, for integration specs and benchmarks:
 * TypeORM with the credentials + audit + outbox entities and migrations, the event emitter,
 * PersistenceModule (the transaction runner and the outbox, dispatching), KeyVaultModule (global,
 * private metrics registry) against the emulator, AuditModule (global) and CredentialsModule.
 * Add the module under test (OAuthRefreshModule, ScheduleModule, ...) after these imports.
 */
export function credentialsStackImports(o: CredentialsStackOptions): DynamicModule[] {
  const { isGlobal, ...credentials } = o.credentials ?? {};
  return [
    TypeOrmModule.forRoot({
      ...o.database,
      // The rotation lib's tables too: a stack that adds RotationModule needs no other schema.
      entities: [...CREDENTIALS_ENTITIES, ...AUDIT_ENTITIES, ...OUTBOX_ENTITIES, ...ROTATION_ENTITIES],
      migrations: [...CREDENTIALS_MIGRATIONS, ...AUDIT_MIGRATIONS, ...OUTBOX_MIGRATIONS, ...ROTATION_MIGRATIONS],
      migrationsRun: true,
      synchronize: false,
      logging: false,
    } as TypeOrmModuleOptions),
    EventEmitterModule.forRoot({ wildcard: false }),
    PersistenceModule.forRoot(o.persistence ?? {}),
    KeyVaultModule.forRoot({ ...emulatorKeyVaultOptions(o.vault, o.keyVault), isGlobal: true }),
    AuditModule.forRoot({ retention: { enabled: false }, ...o.audit, isGlobal: true }),
    o.credentialsRegistration === 'forRootAsync'
      ? CredentialsModule.forRootAsync({ isGlobal: isGlobal ?? false, useFactory: async () => credentials })
      : CredentialsModule.forRoot({ ...credentials, isGlobal: isGlobal ?? false }),
  ];
}
