import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Test, type TestingModule } from '@nestjs/testing';
import { DataSource } from 'typeorm';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, type TestDatabase } from '@app/testing';
import { legacyJsonl, legacySeedRows } from './legacy/legacy-seed';
import { MigrationRunner } from './runner/migration.runner';
import { JsonlLegacySource } from './sources/jsonl-legacy-source';
import { migrationStackImports } from './testing/migration-stack';

/** A local vault throttled hard (10 transactions per second): the run completes, every 429 absorbed, none reported. */
describe('MigrationRunner against a throttled local vault (JSON-lines source)', () => {
  const COUNT = 60;
  const key = randomBytes(32);
  let dir: string;
  let vault: KeyVaultEmulator;
  let db: TestDatabase;
  let app: TestingModule;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cv-mig-throttle-'));
    vault = await KeyVaultEmulator.start({ dataDir: join(dir, 'vault'), port: 0, quiet: true, throttle: { limit: 10, windowMs: 1000 } });
    db = await createTestDatabase('sqlite');
    writeFileSync(join(dir, 'legacy.jsonl'), legacyJsonl(legacySeedRows({ count: COUNT, keys: [key], apiKeysOnly: true })));
    app = await Test.createTestingModule({
      imports: migrationStackImports(
        { database: { ...db.options, enableWAL: true } as typeof db.options, vault },
        { keys: [key.toString('base64')], concurrency: { initial: 16, max: 64 } },
      ),
    }).compile();
    await app.init();
  });

  afterAll(async () => {
    await app?.close();
    await db?.drop();
    await vault?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('completes with every connection migrated and no throttling error in the report', async () => {
    const s = await app.get(MigrationRunner).run(new JsonlLegacySource(join(dir, 'legacy.jsonl')), { batchSize: 30 });
    expect(s).toMatchObject({ totalConnections: COUNT, successfulMigrations: COUNT, failedMigrations: 0, skipped: 0, totalCredentialsMigrated: COUNT, errors: [] });
    // The vault did throttle, and the limiter absorbed it (cutting its limit, waiting Retry-After).
    expect(vault.stats().byStatus['429']).toBeGreaterThan(0);
    expect(s.throttling.absorbed).toBeGreaterThan(0);
    expect(s.throttling.decreases).toBeGreaterThan(0);
    expect(JSON.stringify(s)).not.toMatch(/RATE_LIMITED|Throttled/);
    const count = async (sql: string) => Number((await app.get(DataSource).query(sql))[0].n);
    expect(await count('SELECT COUNT(*) AS n FROM cv_credentials')).toBe(COUNT);
    // Only final outcomes are audited: one STORE and one MIGRATE row per credential, no failed
    // (throttled) STORE attempt, no read.
    expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'store' AND result = 'success'`)).toBe(COUNT);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'store' AND result <> 'success'`)).toBe(0);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'migrate'`)).toBe(COUNT);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'read'`)).toBe(0);
  });
});
