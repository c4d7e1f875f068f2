import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { externalVaultEnv } from './support/cli';
import { embeddedBackends } from './support/backends';
import { writeRequireHook } from './support/swc-require-hook';

const ROOT = join(__dirname, '..');
const MAIN = join(ROOT, 'apps', 'cli', 'src', 'main.ts');

/** The CLI as `npm run cli --` runs it: what an operator (or a CI log) sees of a mistyped command line. */
describe('the CLI process', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'cv-cli-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (args: string[], until?: RegExp, env: Record<string, string> = {}, killAfterMs?: number) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--no-warnings', '--require', writeRequireHook(dir), MAIN, ...args], {
        cwd: ROOT,
        env: { ...process.env, NODE_ENV: 'test', ...embeddedBackends(env, dir), ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      let stopped = false;
      child.stdout.on('data', (d) => {
        stdout += d;
        // A long-running command (the emulator): stop it once it printed what the test waits for — once: a second
        // SIGTERM while it flushes (a later line matches too) ends it at once, as a second Ctrl-C does.
        if (!stopped && until?.test(stdout)) {
          stopped = true;
          child.kill('SIGTERM');
        }
      });
      child.stderr.on('data', (d) => (stderr += d));
      // A command that hangs (blocked in a synchronous call): killed, so the test fails instead of waiting forever.
      const kill = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      child.on('close', () => clearTimeout(kill));
      // 'close', not 'exit': 'exit' may come before the last output was read from the pipes (seen on a loaded CI).
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });

  // The one test that runs the CLI through npm and its build (the others run main.ts directly).
  it("run the way the README says, stdout is the command's output alone: it pipes into jq (npm's banner went first)", async () => {
    const documented = /^## CLI\n\n`(npm run [^`]*)<command>`/m.exec(readFileSync(join(ROOT, 'README.md'), 'utf8'))?.[1];
    expect(documented).toMatch(/ cli -- $/);
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('sh', ['-c', `${documented}audit:verify`], {
        cwd: ROOT,
        env: { ...process.env, NODE_ENV: 'test', DATABASE_PATH: join(dir, 'npm-run.sqlite'), EMULATOR_DATA_DIR: join(dir, 'npm-run-vault') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ valid: true, checked: 0, chains: 0, anchorsChecked: 0 });
    // stderr is the command's own: its note on the anchors, not the build's summary.
    expect(r.stderr).toContain('Anchors not checked');
    expect(r.stderr).not.toContain('compiled');
  }, 120_000);

  it('an unknown option exits 1 naming the option, never the value given with it (it may be a secret)', async () => {
    const r = await run(['audit:verify', '--client-secret=LEAKMARKER-cli-7f3a']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("unknown option '--client-secret=…'");
    expect(r.stdout + r.stderr).not.toContain('LEAKMARKER');
  }, 60_000);

  // commander 11 (nest-commander's) ignored arguments no command declares: `backup --tenant t1 t1.cvbak` (no --out)
  // went on to open the database and failed later on something else; `audit:verify yes` verified and exited 0.
  it('an argument no command declares exits 1 naming the command, before it opens anything', async () => {
    const database = join(dir, 'excess-args.sqlite');
    const r = await run(['audit:verify', 'LEAKMARKER-arg-91c2'], undefined, { DATABASE_PATH: database });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("too many arguments for 'audit:verify'");
    expect(r.stdout).toBe('');
    expect(r.stderr).not.toContain('LEAKMARKER');
    expect(existsSync(database)).toBe(false);
  }, 60_000);

  it('emulator takes the emulator flags the README shows (--port, --data-dir) and --help lists them', async () => {
    const help = await run(['emulator', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--data-dir <dir>');

    const started = await run(['emulator', '--port', '0', '--data-dir', join(dir, 'emulator')], /Data dir: /);
    expect(started.stderr).not.toContain('unknown option');
    expect(started.stdout).toMatch(/Vault URL: https:\/\/127\.0\.0\.1:\d+/);
    expect(started.stdout).toContain(`Data dir: ${join(dir, 'emulator')}`);
    expect(started.stdout).toContain('Key Vault emulator stopped.');
    expect(started.code).toBe(0); // null: killed by the signal instead of stopping on it
  }, 60_000);

  // Node's recursive mkdir retried the data dir forever at 100% CPU where every mkdir answers ENOENT (procfs), deaf to SIGTERM.
  it('emulator with a --data-dir that cannot be created (under /proc) exits 1 naming it, instead of spinning', async () => {
    const r = await run(['emulator', '--data-dir', '/proc/cv-no-such-vault/data'], undefined, {}, 30_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot create the data dir /proc/cv-no-such-vault/data');
    expect(r.stderr).not.toMatch(/^\s+at /m);
  }, 60_000);

  it("a command run beside the host (the embedded vault's port taken) says to stop the host, and exits 1", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as AddressInfo).port;
      const r = await run(['policies:list', '--tenant', 'acme'], undefined, { EMULATOR_PORT: String(port) });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`cannot listen on port ${port} (EMULATOR_PORT)`);
      expect(r.stderr).toContain('Stop the host before running a CLI command');
      // That sentence is the whole answer: no Nest exception-handler dump with a stack trace around it.
      expect(r.stderr).not.toContain('ExceptionHandler');
      expect(r.stderr).not.toMatch(/^\s+at /m);
    } finally {
      taken.close();
    }
  }, 60_000);

  // Nest's TypeORM module retried a connection 9 times, 3 s apart, each time logging "Unable to connect to the
  // database. Retrying (n)..." with a stack: ~30 s of noise before the command failed. A command tries once.
  it('a command whose database cannot be reached fails at once with one line naming what it tried, never the password', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const db = { DATABASE_TYPE: 'postgres', DATABASE_URL: `postgres://cv:LEAKMARKER-db-2e9b@127.0.0.1:${port}/cv`, EMULATOR_PORT: '0' };
    // What starting the CLI costs here (compiling it, loading every command), so the bound below is on the attempt alone.
    let started = Date.now();
    expect((await run(['audit:verify', '--help'])).code).toBe(0);
    const startup = Date.now() - started;
    // audit:verify opens its own context; policies:list the host's libs (and the embedded vault) with withHostLibs.
    for (const args of [['audit:verify'], ['policies:list', '--tenant', 'acme']]) {
      started = Date.now();
      const r = await run(args, undefined, db);
      const took = Date.now() - started;
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`cannot connect to the postgres database at 127.0.0.1:${port} (DATABASE_URL): connect ECONNREFUSED`);
      expect(r.stderr).not.toContain('Retrying');
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.stdout + r.stderr).not.toContain('LEAKMARKER');
      expect(took - startup).toBeLessThan(5_000);
    }
  }, 120_000);

  // The legacy database of `migrate --source sql` was opened bare: `SqliteError: unable to open database file` or
  // `connect ECONNREFUSED 127.0.0.1:1`, naming neither the file nor the variable.
  it('migrate --source sql whose legacy database cannot be opened fails with one line naming it and its variable, never the password', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const base = { LEGACY_ENCRYPTION_KEYS: 'a'.repeat(64), DATABASE_PATH: join(dir, 'legacy-host.sqlite') };
    const missing = join(dir, 'no-such-legacy.sqlite');
    const cases: [Record<string, string>, string][] = [
      [{ LEGACY_DATABASE_URL: `postgres://cv:LEAKMARKER-legacy-5d1e@127.0.0.1:${port}/legacy` }, `cannot connect to the postgres database at 127.0.0.1:${port} (LEGACY_DATABASE_URL): connect ECONNREFUSED`],
      [{ LEGACY_DATABASE_PATH: missing }, `cannot open the SQLite database file ${missing} (LEGACY_DATABASE_PATH): unable to open database file`],
      // libpq's Unix-socket form, a user and no host (the socket's directory in ?host=): was refused as no URL.
      [{ LEGACY_DATABASE_URL: `postgresql://cv:LEAKMARKER-legacy-5d1e@/legacy?host=${dir}` }, `cannot connect to the postgres database at ${dir}:5432 (LEGACY_DATABASE_URL): connect ENOENT`],
    ];
    for (const [env, message] of cases) {
      const r = await run(['migrate', '--source', 'sql'], undefined, { ...base, ...env });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(message);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.stdout + r.stderr).not.toContain('LEAKMARKER');
    }
    expect(existsSync(missing)).toBe(false);
  }, 120_000);

  // Node's recursive mkdirSync printed a bare `EEXIST: file already exists, mkdir '/etc/hostname'` for a file in the
  // way, and under /proc (every mkdir answered ENOENT) made the existing parent and retried the child forever.
  it('a DATABASE_PATH whose directory is a file, or cannot be created, fails at once with one line naming the variable', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'not a directory');
    const cases = [
      [join(file, 'db.sqlite'), `cannot use the SQLite database file ${join(file, 'db.sqlite')} (DATABASE_PATH): ${file} is a file, not a directory`],
      [join(file, 'deeper', 'db.sqlite'), `cannot use the SQLite database file ${join(file, 'deeper', 'db.sqlite')} (DATABASE_PATH): ${file} is a file, not a directory`],
      ['/proc/cv-no-such-dir/db.sqlite', 'cannot use the SQLite database file /proc/cv-no-such-dir/db.sqlite (DATABASE_PATH): cannot create the directory /proc/cv-no-such-dir (ENOENT'],
    ];
    for (const [path, line] of cases) {
      const r = await run(['audit:verify'], undefined, { DATABASE_PATH: path }, 30_000);
      expect([r.code, r.stderr]).toEqual([1, expect.stringContaining(line)]);
      expect(r.stderr).not.toContain('mkdir');
      expect(r.stderr).not.toMatch(/^\s+at /m);
    }
    expect(existsSync('/proc/cv-no-such-dir')).toBe(false);
  }, 120_000);

  /** A vault no command reaches: each one below is refused before it would try. */
  const unreachableVault = { KEY_VAULT_URL: 'https://localhost:1', KEY_VAULT_CREDENTIAL: 'static', KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true' };

  /** The problems audit:verify and migrate (which reads its configuration its own way) list for `env`, each command's: exit 1, no stack. */
  const refusedByEveryCommand = async (env: Record<string, string>): Promise<string[][]> => {
    const jsonl = join(dir, 'refused-legacy.jsonl');
    writeFileSync(jsonl, '');
    const listed: string[][] = [];
    for (const args of [['audit:verify'], ['migrate', '--source', 'jsonl', '--file', jsonl]]) {
      const r = await run(args, undefined, { LEGACY_ENCRYPTION_KEYS: 'a'.repeat(64), ...env }, 60_000);
      expect(r.code).toBe(1);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      listed.push(r.stderr.split('\n').flatMap((l) => (l.startsWith('  - ') ? [l.slice(4)] : [])));
    }
    return listed;
  };

  // migrate read its configuration with loadAppConfig alone: a missing CA file failed it as the vault module was built,
  // 'ENOENT: no such file or directory, open …', naming no variable (the other commands listed it). The workload
  // identity's token file was not checked at all: the SDK failed the first vault call.
  it('a file that cannot be read (a CA, a token file) is named by its variable, with the other problems, by every command (migrate too)', async () => {
    const files = { KEY_VAULT_CA_CERT_PATH: join(dir, 'no-such-ca.pem'), AZURE_FEDERATED_TOKEN_FILE: join(dir, 'no-such-token') };
    for (const problems of await refusedByEveryCommand({ ...unreachableVault, ...files, PORT: 'x' })) {
      expect(problems).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^PORT: /),
          'KEY_VAULT_CA_CERT_PATH: the file cannot be read (ENOENT)',
          'AZURE_FEDERATED_TOKEN_FILE: the file cannot be read (ENOENT)',
        ]),
      );
    }
  }, 120_000);

  // Each was ignored: a command ran on PostgreSQL and the vault KEY_VAULT_URL names, not on the file or vault directory set.
  it("SQLite's variables on PostgreSQL and the embedded vault's beside KEY_VAULT_URL are named with the other problems, by every command", async () => {
    const unused = { DATABASE_PATH: join(dir, 'unused.sqlite'), EMULATOR_DATA_DIR: join(dir, 'unused-vault') };
    const postgres = { DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://cv@127.0.0.1:1/cv' };
    for (const problems of await refusedByEveryCommand({ ...postgres, ...unreachableVault, ...unused, PORT: 'x' })) {
      expect(problems.map((p) => p.split(':')[0]).sort()).toEqual(['DATABASE_PATH', 'EMULATOR_DATA_DIR', 'PORT']);
    }
    expect(existsSync(unused.DATABASE_PATH)).toBe(false);
  }, 120_000);

  // A mistyped tenant id got a data key of its own, and the command printed its version and exited 0.
  it('data-key:rotate for a tenant with no data key (a mistyped id) exits 1 with one line naming the tenant, writing no key', async () => {
    const vault = await KeyVaultEmulator.start({ port: 0, dataDir: join(dir, 'typo-vault'), quiet: true });
    try {
      const r = await run(['data-key:rotate', '--tenant', 'acme-typo'], undefined, { ...externalVaultEnv(vault), DATABASE_PATH: join(dir, 'typo.sqlite') });
      expect(r.code).toBe(1);
      // A new database: the command first created the schema, as the host does, and said so.
      expect(r.stderr.trim().split('\n')).toEqual([
        expect.stringMatching(/^\[Migrations\] Applied \d+ migrations: /),
        expect.stringMatching(/^DataKeyNotFoundError: tenant acme-typo has no data key: .*nothing was written$/),
      ]);
      expect(r.stdout).toBe('');
      expect(vault.stats().byOperation.setSecret ?? 0).toBe(0);
    } finally {
      await vault.stop();
    }
  }, 60_000);

  // The port error's old advice, "or another EMULATOR_PORT", started a second vault on the host's data: the CLI's
  // writes went to a store the host's vault never reads (the host then answered 500 for the rotated credential) and
  // the two rewrote each other's files.
  it("a command on the data dir of a vault another process runs (another EMULATOR_PORT) refuses, writing nothing", async () => {
    const vaultDir = join(dir, 'shared-vault');
    const running = await KeyVaultEmulator.start({ port: 0, dataDir: vaultDir, quiet: true });
    try {
      const journal = join(vaultDir, 'secrets.json.journal');
      const before = existsSync(journal) ? readFileSync(journal) : undefined;
      const r = await run(['data-key:rotate', '--tenant', 'acme'], undefined, { EMULATOR_PORT: '0', EMULATOR_DATA_DIR: vaultDir });
      expect(r.code).toBe(1);
      // The host's words (its variables, its CLI), not the local vault's to code that embeds it ("another dataDir").
      expect(r.stderr).toContain(`${vaultDir} (EMULATOR_DATA_DIR) is in use by the local Key Vault of process ${process.pid}`);
      expect(r.stderr).toContain("Stop the host before running a CLI command on its data, or set KEY_VAULT_URL to that vault's URL");
      expect(r.stderr).toContain(`delete ${join(vaultDir, 'emulator.pid')}`);
      expect(r.stderr).not.toContain('dataDir');
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.stdout).toBe('');
      expect(existsSync(journal) ? readFileSync(journal) : undefined).toEqual(before);
    } finally {
      await running.stop();
    }
  }, 60_000);
});
