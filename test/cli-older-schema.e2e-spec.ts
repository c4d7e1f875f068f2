import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { databaseOptions, loadAppConfig } from '@app/api-host';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { externalVaultEnv } from './support/cli';
import { inPostgresSchema, onEachHostDatabase, spawnCli, type HostDatabase } from './support/cli-process';
import { writeRequireHook } from './support/swc-require-hook';

/**
 * The CLI on a host database an earlier version left (its newest migration undone). Upgrading the schema is the host's
 * start (docs/OPERATIONS.md, "Upgrading": after a backup, one replica alone, under the schema's lock, logged); every
 * command opening the database applied the pending migrations on the way, unlocked and unannounced.
 */
describe('CLI commands on a host database whose schema is older than this version', () => {
  let dir: string;
  let hook: string;
  let vault: KeyVaultEmulator;
  const children: ChildProcess[] = [];
  const cli = (args: string[], env: Record<string, string>) => {
    const run = spawnCli(hook, args, { NODE_ENV: 'test', LOG_LEVEL: 'error', ...env });
    children.push(run.child);
    return run;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cv-cli-older-'));
    hook = writeRequireHook(dir);
    vault = await KeyVaultEmulator.start({ dataDir: join(dir, 'vault'), port: 0, quiet: true, throttle: false });
  }, 60_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await vault?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** `check` on each kind of host database whose newest migration is undone, given that migration's name. */
  const onEachOlderDatabase = (home: string, check: (at: HostDatabase & { pending: string }) => Promise<void>) =>
    onEachHostDatabase(home, async (at) => {
      const pending = (await at.migrations()).at(-1)!.name;
      await at.host.undoLastMigration();
      expect((await at.migrations()).map((m) => m.name)).not.toContain(pending);
      await check({ ...at, pending });
    });

  it('an operational command refuses with one line naming the pending migration and how to apply it, exit 1, nothing written', async () => {
    const home = join(dir, 'refused');
    mkdirSync(home);
    const keyFile = join(home, 'backup.key');
    writeFileSync(keyFile, randomBytes(32).toString('base64'));
    // The embedded vault: a command that went on would start it in EMULATOR_DATA_DIR.
    const embedded = { EMULATOR_DATA_DIR: join(home, 'vault'), EMULATOR_PORT: '0' };
    await onEachOlderDatabase(home, async ({ database, label, migrations, pending }) => {
      const before = await migrations();
      const out = join(home, 'acme.cvbak');
      for (const args of [
        ['audit:verify'],
        ['data-key:rotate', '--tenant', 'acme'],
        ['backup', '--tenant', 'acme', '--out', out, '--key-file', keyFile],
        ['revoke', '--tenant', 'acme', '--integration', 'github', '--reason', 'test'],
      ]) {
        const r = await cli(args, { ...embedded, ...database }).exited;
        expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 1, stdout: '' });
        expect(r.stderr.trim().split('\n')).toEqual([
          expect.stringMatching(
            new RegExp(
              `^CommandSchemaOutdatedError: ${label.replace(/[.()]/g, '\\$&')}.* has a Credential Vault schema older than this version: 1 migration pending \\(${pending}\\)\\. ` +
                'This command applies none: nothing was changed\\. .*start the host of this version',
            ),
          ),
        ]);
        expect(await migrations()).toEqual(before);
      }
      expect(existsSync(out)).toBe(false);
    });
    expect(existsSync(join(home, 'vault'))).toBe(false);
  }, 120_000);

  // A later version's migrations (a rollback, an old replica's CLI): TypeORM passes over them and the command goes on, as
  // the host does, but an operator running an emergency command against it should learn what it does not know.
  it('an operational command on a schema newer than this version warns on stderr naming the migrations it does not know, and goes on', async () => {
    const home = join(dir, 'newer');
    mkdirSync(home);
    await onEachHostDatabase(home, async ({ database, label, host }) => {
      const later = ['AddLaterColumn4102444800000', 'AddLaterIndex4102444800001'];
      for (const [i, name] of later.entries()) await host.query(`INSERT INTO cv_migrations (timestamp, name) VALUES (${4102444800000 + i}, '${name}')`);
      const r = await cli(['audit:verify'], database).exited;
      expect({ code: r.code, stdout: JSON.parse(r.stdout) }).toEqual({ code: 0, stdout: expect.objectContaining({ valid: true }) });
      expect(r.stderr).toContain(`warning: ${label}`);
      expect(r.stderr).toContain(`has a Credential Vault schema newer than this version: 2 migrations it does not know (${later.join(', ')})`);
      // Once (the command's own check), and never on stdout, which is the command's JSON.
      expect(r.stderr.split('schema newer than this version').length - 1).toBe(1);
      expect(r.stdout).not.toContain('newer than this version');
    });
  }, 60_000);

  it('leaves a SQLite file no host holds as it found it: no -wal or -shm file beside it after the refusal', async () => {
    const home = join(dir, 'wal');
    mkdirSync(home);
    const path = join(home, 'host.sqlite');
    // The host's own options: WAL mode, the schema made, then its newest migration undone; closed as a stopped host is.
    const host = await new DataSource(databaseOptions(loadAppConfig({ NODE_ENV: 'test', DATABASE_PATH: path }))).initialize();
    await host.undoLastMigration();
    await host.destroy();
    expect(readdirSync(home)).toEqual(['host.sqlite']);
    const r = await cli(['audit:verify'], { DATABASE_PATH: path }).exited;
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: expect.stringContaining('nothing was changed') });
    expect(readdirSync(home)).toEqual(['host.sqlite']);
  }, 60_000);

  /** Holds the migrations' advisory lock of `host`'s schema (as a replica that is migrating it does) until `release`. */
  async function holdMigrationsLock(host: DataSource) {
    const session = host.createQueryRunner();
    await session.connect();
    const [{ key }] = (await session.query("SELECT hashtext('credential-vault:migrations:' || current_schema())::bigint AS key")) as { key: string }[];
    await session.query('SELECT pg_advisory_lock($1)', [key]);
    // A session waiting for that lock (pg_locks splits a bigint key into classid and objid).
    const waiting = async () =>
      Number(
        (
          (await host.query(
            "SELECT COUNT(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) " +
              'AND classid::bigint = (($1::bigint >> 32) & 4294967295) AND objid::bigint = ($1::bigint & 4294967295)',
            [key],
          )) as { n: string }[]
        )[0].n,
      ) > 0;
    return { waiting, release: () => session.query('SELECT pg_advisory_unlock($1)', [key]).finally(() => session.release()) };
  }

  it('migrate applies them as the host does: on PostgreSQL after the replica holding the schema’s lock, and says so on stderr', async () => {
    const home = join(dir, 'migrate');
    mkdirSync(home);
    const empty = join(home, 'legacy.jsonl');
    writeFileSync(empty, '');
    const env = { ...externalVaultEnv(vault), LEGACY_ENCRYPTION_KEYS: randomBytes(32).toString('hex') };
    await onEachOlderDatabase(home, async ({ database, host, migrations, pending }) => {
      const lock = host.options.type === 'postgres' ? await holdMigrationsLock(host) : undefined;
      try {
        // A real run of a tenant with no legacy rows: nothing to import, the schema brought up to date.
        const run = cli(['migrate', '--source', 'jsonl', '--file', empty, '--tenant', 'no-such-tenant'], { ...env, ...database });
        if (lock) {
          const until = Date.now() + 30_000;
          while (!(await lock.waiting()) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
          expect(await lock.waiting()).toBe(true);
          expect((await migrations()).map((m) => m.name)).not.toContain(pending);
          await lock.release();
        }
        const r = await run.exited;
        expect(r.code).toBe(0);
        expect(r.stderr.split('\n')).toContain(`[Migrations] Applied 1 migration: ${pending}`);
        expect(r.stdout).not.toContain('[Migrations]');
        expect((await migrations()).at(-1)!.name).toBe(pending);
      } finally {
        await lock?.release().catch(() => undefined);
      }
    });
  }, 120_000);

  it('a command on a schema already current takes no migrations lock: a later version migrating the schema does not hold it up', async () => {
    await inPostgresSchema(async ({ url, schema }) => {
      const database = { DATABASE_TYPE: 'postgres', DATABASE_URL: url, DATABASE_SCHEMA: schema };
      // This version's schema, then the lock held as a replica of a later version holds it while its migrations run.
      const host = await new DataSource(databaseOptions(loadAppConfig({ NODE_ENV: 'test', ...database }))).initialize();
      const lock = await holdMigrationsLock(host);
      try {
        const run = cli(['audit:verify'], database);
        let timer: NodeJS.Timeout | undefined;
        const r = await Promise.race([run.exited, new Promise<'still waiting'>((done) => (timer = setTimeout(() => done('still waiting'), 20_000)))]);
        clearTimeout(timer);
        expect(r === 'still waiting' ? r : { code: r.code, stdout: JSON.parse(r.stdout) }).toEqual({ code: 0, stdout: expect.objectContaining({ valid: true }) });
      } finally {
        await lock.release().catch(() => undefined);
        await host.destroy();
      }
    });
  }, 60_000);
});
