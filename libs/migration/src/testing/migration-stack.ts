import type { DynamicModule } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { TypeOrmModule, type TypeOrmModuleOptions } from '@nestjs/typeorm';
import { AUDIT_ENTITIES, AUDIT_MIGRATIONS } from '@app/audit';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS } from '@app/common';
import { CREDENTIALS_ENTITIES, CREDENTIALS_MIGRATIONS } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, type CredentialsStackOptions, type TestDatabase, type TestDatabaseKind } from '@app/testing';
import { openLegacySqlite } from './legacy-fixture';
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

/** What `useMigrationStack` sets up before the spec's tests (read them inside tests and hooks, not at definition). */
export interface MigrationStack {
  vault: KeyVaultEmulator;
  db: TestDatabase;
  legacy: Awaited<ReturnType<typeof openLegacySqlite>>;
  app: TestingModule;
}

/**
 * Registers a migration spec's beforeAll/afterAll: a local vault, a test database of `kind`, a legacy SQLite
 * database (`seed` fills it), and the app built from `imports` (usually `migrationStackImports`), closed in reverse.
 */
export function useMigrationStack(
  kind: TestDatabaseKind,
  imports: (s: Pick<MigrationStack, 'vault' | 'db'>) => DynamicModule[],
  seed?: (legacy: MigrationStack['legacy']['db']) => Promise<void>,
): MigrationStack {
  const stack = {} as MigrationStack;
  beforeAll(async () => {
    stack.vault = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    stack.db = await createTestDatabase(kind);
    stack.legacy = await openLegacySqlite();
    await seed?.(stack.legacy.db);
    stack.app = await Test.createTestingModule({ imports: imports(stack) }).compile();
    await stack.app.init();
  });
  afterAll(async () => {
    await stack.app?.close();
    await stack.legacy?.dispose();
    await stack.db?.drop();
    await stack.vault?.stop();
  });
  return stack;
}
