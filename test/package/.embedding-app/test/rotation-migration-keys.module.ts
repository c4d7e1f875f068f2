import { Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { ScheduleModule } from '@nestjs/schedule';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AUDIT_ENTITIES, AUDIT_MIGRATIONS, AuditModule } from '@credential-vault/nest/audit';
import { initializeWithMigrations, OUTBOX_ENTITIES, OUTBOX_MIGRATIONS, PersistenceModule } from '@credential-vault/nest/common';
import { CREDENTIALS_ENTITIES, CREDENTIALS_MIGRATIONS, CredentialsModule } from '@credential-vault/nest/credentials';
import { KeyVaultModule } from '@credential-vault/nest/key-vault';
import { KeysModule } from '@credential-vault/nest/keys';
import { MIGRATION_ENTITIES, MIGRATION_MIGRATIONS, MigrationModule } from '@credential-vault/nest/migration';
import { ROTATION_ENTITIES, ROTATION_MIGRATIONS, RotationModule } from '@credential-vault/nest/rotation';
import { AuditAnchorModule, LockModule } from '../src/app.module';

/**
 * The app's infrastructure as src/app.module.ts has it, with Rotation, Migration and Keys wired as their
 * READMEs say: each lib's entities and migrations in the DataSource, a rotation handler for one
 * integration, the legacy key from the app's own config (LEGACY_ENCRYPTION_KEY).
 */
@Module({
  imports: [
    ConfigModule.forRoot({ isGlobal: true }),
    TypeOrmModule.forRootAsync({
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({
        type: 'postgres',
        url: config.getOrThrow<string>('DATABASE_URL'),
        schema: config.get<string>('DATABASE_SCHEMA'),
        entities: [...OUTBOX_ENTITIES, ...AUDIT_ENTITIES, ...CREDENTIALS_ENTITIES, ...ROTATION_ENTITIES, ...MIGRATION_ENTITIES],
        migrations: [...OUTBOX_MIGRATIONS, ...AUDIT_MIGRATIONS, ...CREDENTIALS_MIGRATIONS, ...ROTATION_MIGRATIONS, ...MIGRATION_MIGRATIONS],
      }),
      dataSourceFactory: (options) => initializeWithMigrations(options!),
    }),
    EventEmitterModule.forRoot(),
    ScheduleModule.forRoot(),
    LockModule,
    PersistenceModule.forRoot({ outbox: { dispatch: true } }),
    KeyVaultModule.forRootAsync({
      isGlobal: true,
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({
        vaultUrl: config.getOrThrow<string>('KEY_VAULT_URL'),
        credential: { type: 'static' as const },
        tls: { caCertPath: config.getOrThrow<string>('KEY_VAULT_CA_FILE') },
        disableChallengeResourceVerification: true,
      }),
    }),
    AuditAnchorModule,
    AuditModule.forRoot({ isGlobal: true }),
    CredentialsModule.forRoot({ isGlobal: true }),
    RotationModule.forRoot({
      // The provider's API mints the next key; here a value naming the version it replaces.
      handlers: [{ integrationId: 'stripe', handler: { mint: async (req) => ({ value: `sk_live_minted_after_v${req.fromVersion}_0123456789` }) } }],
      webhooks: { overlapMs: 3_600_000 },
    }),
    MigrationModule.forRootAsync({
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({ keys: [config.getOrThrow<string>('LEGACY_ENCRYPTION_KEY')] }),
    }),
    KeysModule.forRoot(), // every option has a default (verify: 'local')
  ],
})
export class RotationMigrationKeysModule {}
