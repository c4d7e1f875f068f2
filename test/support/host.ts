import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createApp } from '../../apps/api/src/bootstrap';
import { loadAppConfig } from '../../apps/api/src/config/app.config';
import { embeddedBackends } from './backends';
import { createTestDatabase, POSTGRES_URL, TestDatabase, TestDatabaseKind } from './database';

/** Tests switch the rotation lib's scheduled jobs off, so that no run on the host's schedule expires, rotates or announces credentials under them. */
export const ROTATION_JOBS_OFF: Readonly<Record<string, string>> = Object.freeze({ ROTATION_EXPIRY_MONITOR_ENABLED: 'false', ROTATION_CHECK_ENABLED: 'false' });

const logs: string[] = [];
/** Called with each line as it is written (TestHost.logLine's waits). */
const logListeners = new Set<(line: string) => void>();
const logDestination = {
  write: (line: string) => {
    logs.push(line);
    for (const listener of logListeners) listener(line);
  },
};

/** The first line logged so far, or the first logged later, that `match` accepts. */
function logLine(match: (line: string) => boolean): Promise<string> {
  const found = logs.find(match);
  if (found !== undefined) return Promise.resolve(found);
  return new Promise((resolve) => {
    const listener = (line: string) => {
      if (!match(line)) return;
      logListeners.delete(listener);
      resolve(line);
    };
    logListeners.add(listener);
  });
}

export interface TestHost {
  app: NestFastifyApplication;
  /** http://127.0.0.1:<port> */
  baseUrl: string;
  db: TestDatabase;
  dataDir: string;
  /** The environment the host was booted with (to boot a variant). */
  env: Record<string, string>;
  /**
   * Every line logged by the hosts of this test file (set LOG_LEVEL in extraEnv to log more than
   * errors). Every host of one file writes to the same destination, so they share the list.
   */
  logs: string[];
  /**
   * Resolves with the first line (already logged, or when it is) that `match` accepts: a request's access line is
   * written when its answer has been sent, which may be after the client has it.
   */
  logLine(match: (line: string) => boolean): Promise<string>;
  close(): Promise<void>;
}

/**
 * Boots the reference host exactly as `npm start` does (createApp + loadAppConfig), on a fresh
 * database of the given kind and its own embedded local vault (unless `extraEnv` names a KEY_VAULT_URL), on free ports.
 */
export async function startTestHost(
  kind: TestDatabaseKind,
  extraEnv: Record<string, string> = {},
  createOptions: Omit<Parameters<typeof createApp>[1], 'logDestination'> = {},
): Promise<TestHost> {
  const db = await createTestDatabase(kind);
  const dataDir = mkdtempSync(join(tmpdir(), 'cv-host-'));
  const database: Record<string, string> = kind === 'postgres' ? { DATABASE_TYPE: 'postgres', DATABASE_URL: POSTGRES_URL, DATABASE_SCHEMA: (db.options as { schema: string }).schema } : {};
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    PORT: '0',
    LOG_LEVEL: 'error',
    ...embeddedBackends({ ...database, ...extraEnv }, dataDir),
    ...database,
    ...extraEnv,
  };
  let app: NestFastifyApplication;
  try {
    app = await createApp(loadAppConfig(env), { ...createOptions, logDestination });
  } catch (e) {
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  const baseUrl = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  return {
    app,
    baseUrl,
    db,
    dataDir,
    env,
    logs,
    logLine,
    close: async () => {
      await app.close();
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface HostAnswer {
  status: number;
  retryAfter: string | null;
  /** The body as sent (to check what it must not hold). */
  text: string;
  /** The body parsed; `{}` when empty. */
  body: Record<string, unknown>;
}

/** One request to the host's HTTP API with an API key (a JSON body when given), answered within 30 s. */
export async function callHost(host: Pick<TestHost, 'baseUrl'>, apiKey: string, method: string, path: string, body?: unknown): Promise<HostAnswer> {
  const res = await fetch(`${host.baseUrl}${path}`, {
    method,
    headers: { 'x-api-key': apiKey, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, retryAfter: res.headers.get('retry-after'), text, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}
