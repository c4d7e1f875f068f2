import type { DynamicModule } from '@nestjs/common';
import { TypeOrmModule, type TypeOrmModuleOptions } from '@nestjs/typeorm';
import { AUDIT_ENTITIES, AUDIT_MIGRATIONS } from '@app/audit';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS } from '@app/common';
import { CREDENTIALS_ENTITIES, CREDENTIALS_MIGRATIONS } from '@app/credentials';
import { credentialsStackImports, type CredentialsStackOptions } from '@app/testing';
import { MigrationModule } from '../migration.module';
import type { MigrationModuleOptions } from '../migration.options';
import { MIGRATION_ENTITIES, MIGRATION_MIGRATIONS } from '../migration.persistence';

/**
 * The test stack of `@app/testing` with the checkpoint table added to its TypeORM module, plus
 * MigrationModule. The vault client retries a 429 itself (10 attempts, Retry-After honoured), as the CLI's
 * `migrate` does, so a throttled attempt never reaches the credentials lib (nor its audit).
 */
export function migrationStackImports(o: CredentialsStackOptions, migration: MigrationModuleOptions): DynamicModule[] {
  const [, ...rest] = credentialsStackImports({
    ...o,
    credentials: { ...o.credentials, isGlobal: true },
    keyVault: { resilience: { maxAttempts: 10 }, ...o.keyVault },
  });
  return [
    TypeOrmModule.forRoot({
      ...o.database,
      entities: [...CREDENTIALS_ENTITIES, ...AUDIT_ENTITIES, ...OUTBOX_ENTITIES, ...MIGRATION_ENTITIES],
      migrations: [...CREDENTIALS_MIGRATIONS, ...AUDIT_MIGRATIONS, ...OUTBOX_MIGRATIONS, ...MIGRATION_MIGRATIONS],
      migrationsRun: true,
      synchronize: false,
      logging: false,
    } as TypeOrmModuleOptions),
    ...rest,
    MigrationModule.forRoot(migration),
  ];
}
