import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { databaseOptions, loadAppConfig } from '@app/api-host';
import { createTestDatabase, type TestDatabase } from './database';

const ROOT = join(__dirname, '..', '..');
const MAIN = join(ROOT, 'apps', 'cli', 'src', 'main.ts');

/** What a CLI process printed and how it ended. */
export interface CliExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `npm run cli -- <args>` as a real process (main.ts through `hook`, writeRequireHook's), with `env` over the test's. */
export function spawnCli(hook: string, args: string[], env: Record<string, string>): { child: ChildProcess; exited: Promise<CliExit> } {
  const child = spawn(process.execPath, ['--no-warnings', '--require', hook, MAIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  // 'close', not 'exit': 'exit' may come before the last output was read from the pipes.
  const exited = new Promise<CliExit>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, exited };
}

/** `use` with a PostgreSQL schema of its own (its URL and name), dropped afterwards. */
export async function inPostgresSchema(use: (at: { url: string; schema: string }, pg: TestDatabase) => Promise<void>): Promise<void> {
  const pg = await createTestDatabase('postgres');
  try {
    await use(pg.options as { url: string; schema: string }, pg);
  } finally {
    await pg.drop();
  }
}

/** A host database as `check` gets it: the command's variables, how the CLI names it, a connection, its cv_migrations rows. */
export interface HostDatabase {
  database: Record<string, string>;
  label: string;
  host: DataSource;
  migrations: () => Promise<{ name: string }[]>;
}

/** `check` on a host database of each kind (a SQLite file in `home`, a PostgreSQL schema of its own) with this version's schema. */
export function onEachHostDatabase(home: string, check: (at: HostDatabase) => Promise<void>): Promise<void> {
  return inPostgresSchema(async ({ url, schema }) => {
    for (const [database, label] of [
      [{ DATABASE_PATH: join(home, 'host.sqlite') }, `the SQLite database file ${join(home, 'host.sqlite')} (DATABASE_PATH)`],
      [{ DATABASE_TYPE: 'postgres', DATABASE_URL: url, DATABASE_SCHEMA: schema }, 'the postgres database at '],
    ] as const) {
      const host = await new DataSource(databaseOptions(loadAppConfig({ NODE_ENV: 'test', ...database }))).initialize();
      const migrations = () => host.query('SELECT name FROM cv_migrations ORDER BY id') as Promise<{ name: string }[]>;
      try {
        await check({ database, label, host, migrations });
      } finally {
        await host.destroy();
      }
    }
  });
}
