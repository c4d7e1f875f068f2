import { Global, Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { ScheduleModule } from '@nestjs/schedule';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { AUDIT_ENTITIES, AUDIT_MIGRATIONS, AuditAnchorStore, AuditModule } from '@credential-vault/nest/audit';
import {
  createDistributedLock,
  DistributedLock,
  initializeWithMigrations,
  OUTBOX_ENTITIES,
  OUTBOX_MIGRATIONS,
  PersistenceModule,
  ScheduledJobsModule,
} from '@credential-vault/nest/common';
import { CREDENTIALS_ENTITIES, CREDENTIALS_MIGRATIONS, CredentialsModule, KeyVaultAuditAnchorStore } from '@credential-vault/nest/credentials';
import { KeyVaultModule, KeyVaultProvider } from '@credential-vault/nest/key-vault';
import { OAuthRefreshModule } from '@credential-vault/nest/oauth-refresh';

/** One lock per job / OAuth refresh across replicas (PostgreSQL advisory locks). */
@Global()
@Module({
  imports: [ScheduledJobsModule],
  providers: [{ provide: DistributedLock, inject: [getDataSourceToken()], useFactory: (ds: DataSource) => createDistributedLock(ds) }],
  exports: [DistributedLock],
})
export class LockModule {}

/** Each tenant's audit chain head copied to Key Vault, so verify() notices rows rewritten or cut off in the database. */
@Global()
@Module({
  providers: [{ provide: AuditAnchorStore, inject: [KeyVaultProvider], useFactory: (kv: KeyVaultProvider) => new KeyVaultAuditAnchorStore(kv) }],
  exports: [AuditAnchorStore],
})
export class AuditAnchorModule {}

@Module({
  imports: [
    ConfigModule.forRoot({ isGlobal: true }),
    TypeOrmModule.forRootAsync({
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({
        type: 'postgres',
        url: config.getOrThrow<string>('DATABASE_URL'),
        schema: config.get<string>('DATABASE_SCHEMA'),
        entities: [...OUTBOX_ENTITIES, ...AUDIT_ENTITIES, ...CREDENTIALS_ENTITIES],
        migrations: [...OUTBOX_MIGRATIONS, ...AUDIT_MIGRATIONS, ...CREDENTIALS_MIGRATIONS],
      }),
      // Applies the migrations once even when replicas start together (TypeORM's migrationsRun races).
      dataSourceFactory: (options) => initializeWithMigrations(options!),
    }),
    EventEmitterModule.forRoot(),
    ScheduleModule.forRoot(),
    LockModule,
    PersistenceModule.forRoot({ outbox: { dispatch: true } }),
    KeyVaultModule.forRootAsync({
      isGlobal: true,
      inject: [ConfigService],
      useFactory: (config: ConfigService) => {
        const caCertPath = config.get<string>('KEY_VAULT_CA_FILE');
        return {
          vaultUrl: config.getOrThrow<string>('KEY_VAULT_URL'),
          // In Azure: the app's managed identity. The local vault (tests): its static token, trusting its CA.
          ...(caCertPath
            ? { credential: { type: 'static' as const }, tls: { caCertPath }, disableChallengeResourceVerification: true }
            : { credential: { type: 'managed-identity' as const } }),
        };
      },
    }),
    AuditAnchorModule,
    AuditModule.forRootAsync({ isGlobal: true, useFactory: () => ({ anchor: { enabled: true } }) }),
    CredentialsModule.forRootAsync({
      isGlobal: true,
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({ cache: { ttlMs: Number(config.get('CREDENTIALS_CACHE_TTL_MS', 300_000)) } }),
    }),
    OAuthRefreshModule.forRootAsync({
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({ proactive: { enabled: config.get('OAUTH_PROACTIVE_REFRESH', 'true') === 'true' } }),
    }),
  ],
})
export class AppModule {}
