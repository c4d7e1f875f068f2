import { ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { POSTGRES_URL, REDIS_URL } from '@app/testing';

/**
 * Real host processes for the cluster spec: the reference host compiled once with swc (as
 * `npm run build` does, into a temp dir) and started with `node` per replica, so each replica has its
 * own process, its own caches, its own connection pools and can be `kill -9`'d.
 */

const ROOT = resolve(__dirname, '../..');

export interface HostBuild {
  /** The compiled `apps/api/src/main.js`. */
  mainJs: string;
  remove(): void;
}

/**
 * Compiles apps/ and libs/ with the repository's .swcrc into a temp dir (~1 s); node_modules is linked,
 * not copied. The working tree by default; with CLUSTER_BUILD_REF (e.g. HEAD) that commit's files, so a
 * run is not disturbed by edits in progress.
 */
export async function buildHost(): Promise<HostBuild> {
  const dir = mkdtempSync(join(tmpdir(), 'cv-cluster-build-'));
  const run = promisify(execFile);
  try {
    let src = ROOT;
    const ref = process.env.CLUSTER_BUILD_REF;
    if (ref) {
      src = join(dir, 'src');
      mkdirSync(src);
      await run('sh', ['-c', 'git -C "$0" archive --format=tar "$1" apps libs .swcrc | tar -x -C "$2"', ROOT, ref, src], { timeout: 120_000 });
    }
    await run(join(ROOT, 'node_modules/.bin/swc'), ['apps', 'libs', '-d', dir, '--copy-files', '--config-file', '.swcrc'], { cwd: src, timeout: 120_000 });
    // Module resolution walks up from the compiled files: the link finds the repository's packages.
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { mainJs: join(dir, 'apps/api/src/main.js'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * The variables every replica of one test deployment shares: PostgreSQL (`schema`, with `application_name`
 * = `appName`, which tells which replica holds an advisory lock in pg_stat_activity), Redis under one key
 * prefix, and the local vault as an external one — the real SDK over HTTPS, its CA, a static credential.
 */
export function deploymentEnv(o: { appName: string; schema: string; vault: { vaultUrl: string; caCertPath: string }; redisKeyPrefix: string }): Record<string, string> {
  return {
    DATABASE_TYPE: 'postgres',
    DATABASE_URL: `${POSTGRES_URL}${POSTGRES_URL.includes('?') ? '&' : '?'}application_name=${o.appName}`,
    DATABASE_SCHEMA: o.schema,
    KEY_VAULT_URL: o.vault.vaultUrl,
    KEY_VAULT_CREDENTIAL: 'static',
    KEY_VAULT_CA_CERT_PATH: o.vault.caCertPath,
    KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
    REDIS_URL,
    REDIS_KEY_PREFIX: o.redisKeyPrefix,
  };
}

export interface Replica {
  name: string;
  /** http://127.0.0.1:<port> */
  url: string;
  pid: number;
  /** stdout and stderr lines so far (bounded). */
  output: string[];
  /** Resolves with the exit code or signal once the process has ended. */
  exited: Promise<string>;
  alive(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has ended. */
  stop(graceMs?: number): Promise<void>;
  /** `kill -9`: no shutdown hook runs, connections drop. */
  kill9(): Promise<void>;
}

const children = new Set<ChildProcess>();
// A jest worker that dies (or a hook that throws before afterAll) must not leave hosts behind.
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/**
 * Starts one host process and waits until it prints its URL (it listens on PORT=0). The child gets
 * only PATH, HOME and `env`: nothing of the test process's environment leaks into its configuration.
 */
export async function startReplica(build: HostBuild, name: string, env: Record<string, string>, bootTimeoutMs = 60_000): Promise<Replica> {
  const child = spawn(process.execPath, ['--max-old-space-size=256', build.mainJs], {
    cwd: tmpdir(),
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const output: string[] = [];
  const exited = new Promise<string>((res) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      res(signal ?? String(code));
    }),
  );
  let url: string | undefined;
  const onLine = (line: string) => {
    if (output.length < 5000) output.push(line);
    const m = /listening on (http:\/\/[^\s"]+)/.exec(line);
    if (m && !url) url = m[1].replace('[::1]', '127.0.0.1');
  };
  for (const stream of [child.stdout!, child.stderr!]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
  }
  const alive = () => child.exitCode === null && child.signalCode === null;
  const stop = async (graceMs = 10_000) => {
    if (!alive()) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => alive() && child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(t);
  };
  const deadline = Date.now() + bootTimeoutMs;
  while (!url) {
    if (!alive() || Date.now() > deadline) {
      // Read before stopping it: a boot that timed out would otherwise be reported as its SIGTERM exit.
      const reason = alive() ? `timeout after ${bootTimeoutMs} ms` : `exit ${await exited}`;
      await stop(1000);
      throw new Error(`replica ${name} did not start (${reason}):\n${output.slice(-30).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name,
    url,
    pid: child.pid!,
    output,
    exited,
    alive,
    stop,
    kill9: async () => {
      if (!alive()) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}
