import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { legacySeedKind, legacySeedRows, seedLegacyTable, type MigrationSummary } from '@app/migration';
import { switchedTo } from './support/backends';
import { inPostgresSchema, onEachHostDatabase, spawnCli } from './support/cli-process';
import { writeRequireHook } from './support/swc-require-hook';

const COUNT = 400;

/** What the seed's rules say a full run must end with (duplicates: one copy skipped; conflicts: one copy failed). */
function expected() {
  let ok = 0;
  let failed = 0;
  let skipped = 0;
  let credentials = 0;
  for (let i = 0; i < COUNT; i++) {
    const slot = i % 100;
    if ([5, 7, 8, 9, 12].includes(slot)) failed++;
    else if (slot === 10) skipped++;
    else {
      ok++;
      credentials += legacySeedKind(i, { anomalies: true }) === 1 ? 1 : 2;
    }
  }
  return { ok, failed, skipped, credentials };
}

/** `npm run cli -- migrate` as a real process: killed with SIGKILL mid-run, then resumed to exact totals. */
describe('cli migrate (real process, kill -9, resume)', () => {
  let dir: string;
  let vault: KeyVaultEmulator;
  let hook: string;
  let env: Record<string, string>;
  const children: ChildProcess[] = [];

  const cli = (args: string[], childEnv = env) => {
    const run = spawnCli(hook, args, childEnv);
    children.push(run.child);
    return run;
  };

  const hostQuery = async (sql: string, database = env.DATABASE_PATH): Promise<number> => {
    const db = new DataSource({ type: 'better-sqlite3', database, readonly: true });
    try {
      await db.initialize();
      return Number((await db.query(sql))[0].n);
    } catch {
      return 0; // the child has not created the database or the table yet
    } finally {
      if (db.isInitialized) await db.destroy();
    }
  };

  /** The command's environment without KEY_VAULT_*: it would start the embedded vault in `home`/vault. */
  const embeddedVaultIn = (home: string) => ({ ...Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('KEY_VAULT_'))), EMULATOR_DATA_DIR: join(home, 'vault'), EMULATOR_PORT: '0' });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cv-mig-cli-'));
    hook = writeRequireHook(dir);
    vault = await KeyVaultEmulator.start({ dataDir: join(dir, 'vault'), port: 0, quiet: true, throttle: false });
    const key = randomBytes(32);
    const legacy = await new DataSource({ type: 'better-sqlite3', database: join(dir, 'legacy.sqlite') }).initialize();
    await seedLegacyTable(legacy, legacySeedRows({ count: COUNT, keys: [key, randomBytes(32)], anomalies: true }));
    await legacy.destroy();
    env = {
      NODE_ENV: 'test',
      LOG_LEVEL: 'error',
      DATABASE_PATH: join(dir, 'host.sqlite'),
      KEY_VAULT_URL: vault.vaultUrl,
      KEY_VAULT_CREDENTIAL: 'static',
      KEY_VAULT_CA_CERT_PATH: vault.caCertPath,
      KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
      LEGACY_DATABASE_PATH: join(dir, 'legacy.sqlite'),
      // The second key is unknown to the migration: its rows are reported (LEGACY_AUTH_TAG), like the unknown-key rows.
      LEGACY_ENCRYPTION_KEYS: key.toString('hex'),
    };
  }, 60_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await vault?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a command that fails when it runs exits 1 with its message (not 0: cron jobs and CI steps rely on it)', async () => {
    for (const [args, message] of [
      [['migrate', '--source', 'sql', '--batch-size', '0'], /batch/i],
      [['migrate', '--source', 'jsonl', '--file', join(dir, 'no-such-file.jsonl')], /no-such-file|ENOENT|not found|cannot/i],
      // One line per problem, not the schema's raw report.
      [['api-key:create', '--id', 'bad id!', '--tenant', 'acme', '--scopes', 'nope'], /^ApiKeyInputError: Invalid API key settings:\n {2}- id: [^\n]+\n {2}- scopes\.0: /],
    ] as const) {
      const run = await cli([...args]).exited;
      expect({ args, code: run.code }).toEqual({ args, code: 1 });
      expect(run.stderr).toMatch(message);
      expect(run.stderr).not.toContain(env.LEGACY_ENCRYPTION_KEYS);
    }
    // A parse error of commander's own: said once.
    const unknown = await cli(['bogus:cmd']).exited;
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.match(/bogus:cmd/g)).toHaveLength(1);
  });

  // It created the schema (running the migrations) and started the embedded vault on EMULATOR_DATA_DIR: writes, in a
  // dry run, and most often on a database named by mistake (a mistyped DATABASE_PATH is a new, empty file).
  it('a dry run on a host database without the schema says so and exits 1, creating nothing: no database, schema or embedded vault', async () => {
    const fresh = join(dir, 'fresh');
    const embedded = embeddedVaultIn(fresh);
    const file = join(fresh, 'host.sqlite');
    const dryRun = async () => {
      const r = await cli(['migrate', '--source', 'sql', '--dry-run'], { ...embedded, DATABASE_PATH: file }).exited;
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`the SQLite database file ${file} (DATABASE_PATH) has no Credential Vault schema: nothing to compare against, every field would be new`);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.stdout).toBe('');
      expect(existsSync(join(fresh, 'vault'))).toBe(false);
    };
    await dryRun(); // no file
    expect(existsSync(fresh)).toBe(false);
    mkdirSync(fresh);
    writeFileSync(file, '');
    await dryRun(); // a file with nothing in it
    expect(readFileSync(file)).toHaveLength(0);

    // PostgreSQL: a schema of its own, empty; it stays empty.
    await inPostgresSchema(async ({ url, schema }, pg) => {
      const r = await cli(['migrate', '--source', 'sql', '--dry-run'], switchedTo(embedded, { DATABASE_TYPE: 'postgres', DATABASE_URL: url, DATABASE_SCHEMA: schema })).exited;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/the postgres database at [^ ]+ \(DATABASE_URL\) has no Credential Vault schema: nothing to compare against, every field would be new/);
      expect(r.stdout).toBe('');
      const probe = await new DataSource(pg.options).initialize();
      try {
        expect(await probe.query('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [schema])).toEqual([]);
      } finally {
        await probe.destroy();
      }
    });
    expect(existsSync(join(fresh, 'vault'))).toBe(false);
  }, 60_000);

  // It applied the pending migrations (as every command opening the host's database then did), then ran: a schema change,
  // in a dry run.
  it('a dry run on a host database whose schema is older than this version says it needs migrating and exits 1, applying nothing', async () => {
    const older = join(dir, 'older');
    mkdirSync(older);
    const embedded = embeddedVaultIn(older);
    // The host's schema with its newest migration undone: a database an earlier version left.
    await onEachHostDatabase(older, async ({ database, label, host, migrations }) => {
      const pending = (await migrations()).at(-1)!.name;
      await host.undoLastMigration();
      const before = await migrations();
      expect(before.map((m) => m.name)).not.toContain(pending);
      const r = await cli(['migrate', '--source', 'sql', '--dry-run'], switchedTo(embedded, database)).exited;
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: '' });
      expect(r.stderr).toContain(label);
      expect(r.stderr).toMatch(/has a Credential Vault schema older than this version: 1 migration pending \(\w+\)\. A dry run applies none/);
      expect(r.stderr).toContain(pending);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(await migrations()).toEqual(before);
    });
    expect(existsSync(join(older, 'vault'))).toBe(false);
  }, 60_000);

  // A later version's migrations (TypeORM passes over them as it opens the database, so the host starts): a dry run and
  // a real run go on as the host does — refusing would leave an operator who rolled a release back no run to preview —
  // and both name them in a warning.
  it('on a host database whose schema is newer than this version, a dry run and a real run warn naming the migrations it does not know, and go on', async () => {
    const newer = join(dir, 'newer');
    mkdirSync(newer);
    const embedded = embeddedVaultIn(newer);
    // The host's schema and two migrations of a later version, as cv_migrations records them.
    await onEachHostDatabase(newer, async ({ database, label, host, migrations }) => {
      const later = ['AddLaterColumn4102444800000', 'AddLaterIndex4102444800001'];
      for (const [i, name] of later.entries()) await host.query(`INSERT INTO cv_migrations (timestamp, name) VALUES (${4102444800000 + i}, '${name}')`);
      const before = await migrations();
      const warning = `has a Credential Vault schema newer than this version: 2 migrations it does not know (${later.join(', ')})`;
      const dry = await cli(['migrate', '--source', 'sql', '--dry-run'], switchedTo(embedded, database)).exited;
      expect(dry.stderr).toMatch(/^warning: /m);
      expect(dry.stderr).toContain(label);
      expect(dry.stderr).toContain(warning);
      // It went on: the dry run's report (the fixture's bad rows make it exit 1, as on any schema).
      expect(dry.stdout).toMatch(/^dry run +true$/m);
      expect(dry.stdout).toMatch(/^total connections +400$/m);
      // A real run (of a tenant with no legacy rows: nothing to write) warns the same way.
      const real = await cli(['migrate', '--source', 'sql', '--tenant', 'no-such-tenant'], switchedTo(embedded, database)).exited;
      expect(real.code).toBe(0);
      expect(real.stderr).toContain(warning);
      // Said once per run (the dry run's check before anything opens, the real run's after it opened the database).
      for (const run of [dry, real]) expect(run.stderr.split(warning).length - 1).toBe(1);
      expect(await migrations()).toEqual(before);
    });
  }, 90_000);

  it('a run killed with SIGKILL mid-way resumes to exact totals, with no duplicate credential and one MIGRATE row each', async () => {
    const first = cli(['migrate', '--source', 'sql', '--batch-size', '20']);
    const deadline = Date.now() + 60_000;
    let done = 0;
    while (Date.now() < deadline && done < 60) {
      await new Promise((r) => setTimeout(r, 150));
      done = await hostQuery('SELECT COUNT(*) AS n FROM cv_migration_checkpoints');
    }
    first.child.kill('SIGKILL');
    const killed = await first.exited;
    expect(killed.signal).toBe('SIGKILL');
    const before = await hostQuery('SELECT COUNT(*) AS n FROM cv_migration_checkpoints');
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(COUNT);

    const report = join(dir, 'report.json');
    const second = await cli(['migrate', '--source', 'sql', '--batch-size', '20', '--report', report]).exited;
    expect(second.code).toBe(1); // the reported rows are failures
    const s = JSON.parse(readFileSync(report, 'utf8')) as MigrationSummary;
    const e = expected();
    // The second key's rows fail here too: the CLI was given only the first key.
    const secondKeyRows = COUNT / 100;
    expect(s.totalConnections).toBe(COUNT);
    expect(s.failedMigrations).toBe(e.failed + secondKeyRows);
    expect(s.successfulMigrations + s.skipped).toBe(e.ok - secondKeyRows + e.skipped);
    expect(s.skipped).toBeGreaterThanOrEqual(before);
    expect(second.stdout).toContain('failed migrations');
    expect(second.stderr).toMatch(/progress \d+\/400/);

    const credentials = await hostQuery(`SELECT COUNT(*) AS n FROM cv_credentials WHERE status <> 'deleted'`);
    const distinct = await hostQuery(`SELECT COUNT(*) AS n FROM (SELECT DISTINCT tenant_id, integration_id, connection_id, type FROM cv_credentials WHERE status <> 'deleted') d`);
    expect(credentials).toBe(distinct);
    const secondKeyCredentials = Array.from({ length: COUNT }, (_, i) => i).filter((i) => i % 100 === 6).reduce((n, i) => n + (legacySeedKind(i, { anomalies: true }) === 1 ? 1 : 2), 0);
    expect(credentials).toBe(e.credentials - secondKeyCredentials);
    expect(await hostQuery(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'migrate'`)).toBe(credentials);
    expect(await hostQuery('SELECT COUNT(*) AS n FROM cv_migration_checkpoints')).toBe(e.ok - secondKeyRows);

    // The schema there, a dry run runs: every migrated connection skipped by its checkpoint, the same failures, nothing written.
    const dry = await cli(['migrate', '--source', 'sql', '--dry-run', '--report', join(dir, 'dry.json')]).exited;
    expect(dry.code).toBe(1);
    const d = JSON.parse(readFileSync(join(dir, 'dry.json'), 'utf8')) as MigrationSummary;
    expect(d).toMatchObject({ dryRun: true, totalConnections: COUNT, failedMigrations: s.failedMigrations, skipped: e.ok - secondKeyRows + e.skipped });
    expect(await hostQuery('SELECT COUNT(*) AS n FROM cv_migration_checkpoints')).toBe(e.ok - secondKeyRows);
  }, 120_000);

  it.each(['SIGINT', 'SIGTERM'] as const)('%s mid-run stops it gracefully: summary and report say aborted, exit 128 + the signal, and a re-run completes with one MIGRATE row per credential', async (sig) => {
    // A host database of its own, and a slow vault at four writes at a time: the run would take ~40 s.
    const host = { ...env, DATABASE_PATH: join(dir, `host-${sig}.sqlite`), MIGRATION_CONCURRENCY_INITIAL: '4', MIGRATION_CONCURRENCY_MAX: '4' };
    const query = (sql: string) => hostQuery(sql, host.DATABASE_PATH);
    vault.injectFault({ kind: 'latency', latencyMs: 250, operations: ['setSecret'] });
    try {
      const report = join(dir, `aborted-${sig}.json`);
      const run = cli(['migrate', '--source', 'sql', '--batch-size', '20', '--report', report], host);
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && (await query('SELECT COUNT(*) AS n FROM cv_migration_checkpoints')) < 20) await new Promise((r) => setTimeout(r, 150));
      run.child.kill(sig);
      const signalled = Date.now();
      const stopped = await run.exited;
      expect(Date.now() - signalled).toBeLessThan(5_000);
      expect({ code: stopped.code, signal: stopped.signal }).toEqual({ code: sig === 'SIGINT' ? 130 : 143, signal: null });
      expect(stopped.stderr).toContain(`${sig}: stopping after the writes in flight`);
      expect(stopped.stdout).toMatch(/^aborted +yes/m);
      const s = JSON.parse(readFileSync(report, 'utf8')) as MigrationSummary;
      expect(s.aborted).toBe(true);
      expect(s.successfulMigrations).toBeGreaterThan(0);
      expect(s.successfulMigrations + s.failedMigrations + s.skipped).toBeLessThan(COUNT);
      expect(await query('SELECT COUNT(*) AS n FROM cv_migration_checkpoints')).toBe(s.successfulMigrations);
    } finally {
      vault.clearFaults();
    }

    const report = join(dir, `resumed-${sig}.json`);
    const resumed = await cli(['migrate', '--source', 'sql', '--batch-size', '20', '--report', report], host).exited;
    expect(resumed.code).toBe(1); // the seed's problem rows
    expect(JSON.parse(readFileSync(report, 'utf8'))).toMatchObject({ aborted: false, totalConnections: COUNT });
    const credentials = await query(`SELECT COUNT(*) AS n FROM cv_credentials WHERE status <> 'deleted'`);
    expect(await query(`SELECT COUNT(*) AS n FROM (SELECT DISTINCT tenant_id, integration_id, connection_id, type FROM cv_credentials WHERE status <> 'deleted') d`)).toBe(credentials);
    const secondKeyCredentials = Array.from({ length: COUNT }, (_, i) => i).filter((i) => i % 100 === 6).reduce((n, i) => n + (legacySeedKind(i, { anomalies: true }) === 1 ? 1 : 2), 0);
    expect(credentials).toBe(expected().credentials - secondKeyCredentials);
    expect(await query(`SELECT COUNT(*) AS n FROM cv_credentials c WHERE (SELECT COUNT(*) FROM cv_audit_log a WHERE a.tenant_id = c.tenant_id AND a.action = 'migrate' AND a.resource = c.id) = 1`)).toBe(credentials);
    expect(await query(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'migrate'`)).toBe(credentials);
  }, 120_000);

  it('a vault that stays unavailable past MIGRATION_MAX_VAULT_OUTAGE_MS stops the run: exit 1, its message printed once, the report and table of what was done', async () => {
    // A host database of its own; a slow vault at four writes at a time, that starts answering every write 500 mid-run.
    const host = {
      ...env, DATABASE_PATH: join(dir, 'host-outage.sqlite'), MIGRATION_CONCURRENCY_INITIAL: '4', MIGRATION_CONCURRENCY_MAX: '4',
      MIGRATION_MAX_VAULT_OUTAGE_MS: '1000', KEY_VAULT_MAX_ATTEMPTS: '3', KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS: '1000',
    };
    const query = (sql: string) => hostQuery(sql, host.DATABASE_PATH);
    vault.injectFault({ kind: 'latency', latencyMs: 100, operations: ['setSecret'] });
    try {
      const report = join(dir, 'outage.json');
      const run = cli(['migrate', '--source', 'sql', '--batch-size', '20', '--report', report], host);
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && (await query('SELECT COUNT(*) AS n FROM cv_migration_checkpoints')) < 20) await new Promise((r) => setTimeout(r, 150));
      vault.injectFault({ kind: 'status', status: 500, operations: ['setSecret'] });
      const stopped = await run.exited;
      expect({ code: stopped.code, signal: stopped.signal }).toEqual({ code: 1, signal: null });
      // Once, not as the runner's error log and again as the CLI's own line.
      expect(stopped.stderr.match(/the vault stayed unavailable \(\w+\) for longer than maxVaultOutageMs \(1000 ms\)/g)).toHaveLength(1);
      expect(stopped.stdout).toMatch(/^stopped +MIGRATION_VAULT_UNAVAILABLE/m);
      const s = JSON.parse(readFileSync(report, 'utf8')) as MigrationSummary;
      expect(s.stopped).toEqual({ code: 'MIGRATION_VAULT_UNAVAILABLE', reason: expect.stringContaining('for longer than maxVaultOutageMs (1000 ms)') });
      expect(s.aborted).toBe(false);
      expect(s.successfulMigrations).toBeGreaterThanOrEqual(20);
      expect(s.successfulMigrations + s.failedMigrations + s.skipped).toBeLessThan(COUNT);
      // What it reports migrated is exactly what committed; the connections that met the outage are not reported failed.
      expect(await query('SELECT COUNT(*) AS n FROM cv_migration_checkpoints')).toBe(s.successfulMigrations);
      expect(s.errors.filter((e) => ['CIRCUIT_OPEN', 'SERVICE_UNAVAILABLE', 'TIMEOUT'].includes(e.code))).toEqual([]);
    } finally {
      vault.clearFaults();
    }
  }, 120_000);
});
