import { createTestDatabase, TestDatabase, TestDatabaseKind } from '@app/testing';
import { AUDIT_ENTITIES, AUDIT_MIGRATIONS, AuditModuleOptions } from '@app/audit';
import { DataSource } from 'typeorm';
import { AuditRepository } from '../src/audit.repository';
import { AuditHarness, HarnessOptions, startAudit } from './harness';

/** A harness on a database of its own: `close()` stops the module, then drops the database. */
export interface AuditFixture extends AuditHarness {
  db: TestDatabase;
}

/** The repository alone on a database of its own; `close()` destroys the DataSource, then drops the database. */
export interface AuditRepositoryFixture {
  db: TestDatabase;
  ds: DataSource;
  repo: AuditRepository;
  close(): Promise<void>;
}

/**
 * A fresh database of `kind` with the audit host module started on it (see `startAudit`), for a
 * spec whose tests share one module; one that starts several modules on a database keeps its own.
 */
export function startAuditOn(kind: TestDatabaseKind, options?: AuditModuleOptions, host?: HarnessOptions): Promise<AuditFixture> {
  return onFreshDatabase(kind, async (db) => {
    const h = await startAudit(db, options, host);
    return { ...h, db, close: h.close };
  });
}

/** A fresh database of `kind` with the lib's migrations run on a bare DataSource: no Nest module around the repository. */
export function openAuditRepository(kind: TestDatabaseKind): Promise<AuditRepositoryFixture> {
  return onFreshDatabase(kind, async (db) => {
    const ds = await new DataSource({ ...db.options, entities: AUDIT_ENTITIES, migrations: AUDIT_MIGRATIONS, migrationsRun: true }).initialize();
    return { db, ds, repo: new AuditRepository(ds), close: () => ds.destroy() };
  });
}

/** Runs `start` on a new database; the database is dropped when `start` fails, and after the fixture's own `close()`. */
async function onFreshDatabase<T extends { close(): Promise<void> }>(kind: TestDatabaseKind, start: (db: TestDatabase) => Promise<T>): Promise<T> {
  const db = await createTestDatabase(kind);
  let fixture: T;
  try {
    fixture = await start(db);
  } catch (e) {
    await db.drop();
    throw e;
  }
  const close = fixture.close;
  return {
    ...fixture,
    close: async () => {
      try {
        await close();
      } finally {
        await db.drop();
      }
    },
  };
}
