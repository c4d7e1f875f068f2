/**
 * The child side of ServerProcess: starts one server from the JSON spec in argv[2], sends its URLs to
 * the parent over IPC, and on 'stop' flushes, closes and exits.
 */
import 'reflect-metadata';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { DataSource } from 'typeorm';
import { AuditService } from '@app/audit';
import { CredentialCache, CredentialsService, CredentialType, MAX_STORE_MANY, ReadAuditCoalescer } from '@app/credentials';
import { AppModule } from '../../apps/api/src/app.module';
import { configureApp, createApp, HOST_APP_OPTIONS, hostAdapter } from '../../apps/api/src/bootstrap';
import { AppConfig, loadAppConfig } from '../../apps/api/src/config/app.config';
import { indexChanges } from './audit-index-sets';
import { noopAudit, noopReadAudit } from './noop-audit';
import type { ServerReady, ServerSpec } from './server-process';
import { benchValue } from './spread-reads';

/** The reference host with a no-op audit in place of the real one: same app, same configuration. */
async function hostWithoutAudit(config: AppConfig): Promise<NestFastifyApplication> {
  const moduleRef = await Test.createTestingModule({ imports: [AppModule.forRoot(config)] })
    .overrideProvider(AuditService)
    .useValue(noopAudit)
    .overrideProvider(ReadAuditCoalescer)
    .useValue(noopReadAudit)
    .compile();
  return configureApp(moduleRef.createNestApplication<NestFastifyApplication>(hostAdapter(config.http.requestTimeoutMs), HOST_APP_OPTIONS), config);
}

interface Started {
  ready: ServerReady;
  stop: () => Promise<void>;
  fillCache?: (entries: number, valueBytes: number) => Promise<CacheFill>;
  /** The real audit's read rows written so far (after a flush); absent where nothing is audited. */
  auditedReads?: () => Promise<number>;
}

export interface CacheFill {
  entries: number;
  /**
   * `process.memoryUsage()` after forced GCs, with the cache empty and then full. `heapUsed` is V8's live
   * heap (what the entries hold); `heapTotal` adds the heap's room to grow; RSS adds native memory.
   */
  before: NodeJS.MemoryUsage;
  after: NodeJS.MemoryUsage;
  /** The cache's slab room when full (`CredentialCacheStats.slabBytes`): native, outside `arrayBuffers`. */
  slabBytes: number;
  /**
   * The slab pool's bytes at the baseline (emptied cache): released slabs stay resident for reuse, so
   * anything here would be counted in the baseline and reused by the fill unseen. 0 when storing cached nothing.
   */
  slabPoolBytesBefore: number;
}

const memoryAfterGc = async () => {
  for (let i = 0; i < 3; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage();
};

const flat = (s: string) => Buffer.from(s, 'utf8').toString('utf8');

/**
 * Stores `entries` credentials with values of `valueBytes` (through `storeMany`: the vault and the
 * database, as the API would), empties the cache and takes the baseline RSS, then reads each once
 * through `CredentialsService.get`: the reader loads and caches each as it does in a serving host (its
 * row from the database, its value from the vault, what the read's audit leaves on the entry).
 */
async function fillCache(cache: CredentialCache, credentials: CredentialsService, entries: number, valueBytes: number): Promise<CacheFill> {
  const stored: Array<{ tenantId: string; id: string }> = [];
  for (let from = 0; from < entries; from += MAX_STORE_MANY) {
    const items = Array.from({ length: Math.min(MAX_STORE_MANY, entries - from) }, (_, k) => {
      const i = from + k;
      const ctx = { tenantId: `tenant-${i % 1000}`, actor: { id: 'bench' } };
      const input = { integrationId: `integration-${i % 20}`, connectionId: `connection-${i}`, type: CredentialType.API_KEY, value: `${i}:`.padEnd(valueBytes, 'x'), tags: { env: 'prod', team: `t${i % 50}` } };
      return { ctx, input };
    });
    const results = await credentials.storeMany(items);
    results.forEach((r, k) => {
      if (!r.credential) throw new Error(`storing bench credential ${from + k}: ${String(r.error)}`);
      // Flat copies: an id is built by concatenation, and reading it flattens it in place (~56 B more
      // each), which the second reading would count as the cache's.
      stored.push({ tenantId: flat(items[k].ctx.tenantId), id: flat(r.credential.id) });
    });
  }
  cache.clear();
  const slabPoolBytesBefore = cache.stats().slabPoolBytes ?? 0;
  // The list of ids stays alive until after the second reading, so that both readings hold it.
  const before = await memoryAfterGc();
  for (let next = 0; next < stored.length; ) {
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = next++; i < stored.length; i = next++) {
          const { tenantId, id } = stored[i];
          const read = await credentials.get({ tenantId, actor: { id: 'bench' } }, id);
          if (read.value.length !== valueBytes) throw new Error(`read back ${read.value.length} bytes, stored ${valueBytes}`);
        }
      }),
    );
  }
  const size = cache.stats().size;
  if (size !== entries) throw new Error(`the cache holds ${size} entries after reading ${entries} credentials`);
  const after = await memoryAfterGc();
  if (stored.length !== entries) throw new Error('the list of ids changed');
  return { entries, before, after, slabBytes: cache.stats().slabBytes ?? 0, slabPoolBytesBefore };
}

/**
 * Settings a bench may compare with their defaults (e.g. `DATABASE_SQLITE_WRITE_WORKER=false`): passed to the host when
 * set — SQLite's only to a host on SQLite (one on PostgreSQL refuses them), so one run may compare both databases.
 */
const PASSED_THROUGH = ['METRICS_ENABLED'];
const PASSED_THROUGH_ON_SQLITE = ['DATABASE_SQLITE_SYNCHRONOUS', 'DATABASE_SQLITE_WRITE_WORKER', 'DATABASE_SQLITE_WAL_WORKER', 'DATABASE_SQLITE_WAL_AUTOCHECKPOINT'];

function passedThrough(sqlite: boolean): Record<string, string> {
  const names = sqlite ? [...PASSED_THROUGH, ...PASSED_THROUGH_ON_SQLITE] : PASSED_THROUGH;
  return Object.fromEntries(names.flatMap((k) => (process.env[k] ? [[k, process.env[k]!]] : [])));
}

async function startHost(spec: ServerSpec): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'cv-bench-host-'));
  const db = spec.database ?? { type: 'sqlite' };
  const database: Record<string, string> =
    db.type === 'postgres' ? { DATABASE_TYPE: 'postgres', DATABASE_URL: db.url, DATABASE_SCHEMA: db.schema } : { DATABASE_PATH: join(dir, 'host.sqlite') };
  const config = loadAppConfig({
    NODE_ENV: 'production',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: spec.logLevel ?? 'info',
    ...database,
    METRICS_ENABLED: 'true',
    ...passedThrough(db.type !== 'postgres'),
    KEY_VAULT_URL: spec.vaultUrl,
    KEY_VAULT_CREDENTIAL: 'static',
    KEY_VAULT_CA_CERT_PATH: spec.caCertPath,
    KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
    AUTH_API_KEYS: JSON.stringify([JSON.parse(spec.apiKeyEntry!)]),
    // High enough that the limiter counts every request but never refuses one.
    RATE_LIMIT_PER_MINUTE: '1000000',
    // Scheduled jobs would add their own load at a random moment of a run.
    AUDIT_RETENTION_ENABLED: 'false',
    AUDIT_ANCHOR_ENABLED: 'false',
    OAUTH_PROACTIVE_ENABLED: 'false',
    ROTATION_EXPIRY_MONITOR_ENABLED: 'false',
    ROTATION_CHECK_ENABLED: 'false',
    WEBHOOK_SECRET_ROTATION_ENABLED: 'false',
    ...(spec.cacheMaxEntries ? { CACHE_MAX_ENTRIES: String(spec.cacheMaxEntries) } : {}),
  });
  const app = spec.kind === 'host' ? await createApp(config) : await hostWithoutAudit(config);
  if (spec.kind === 'host' && spec.auditIndexes && spec.auditIndexes !== 'all') {
    // After the migrations, on the host's own DataSource (the SQLite write worker sees the new schema).
    const ds = app.get(DataSource, { strict: false });
    const q = (n: string) => (db.type === 'postgres' ? `"${db.schema}"."${n}"` : `"${n}"`);
    for (const sql of indexChanges(spec.auditIndexes, q, db.type === 'postgres' ? 'postgres' : 'sqlite')) await ds.query(sql);
  }
  const base = (await app.getUrl()).replace('[::1]', '127.0.0.1').replace('localhost', '127.0.0.1');
  const headers = { 'x-api-key': spec.apiKey! };
  const res = await fetch(`${base}/v1/credentials`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ integrationId: 'bench', connectionId: 'c1', type: 'api_key', value: benchValue(spec.valueBytes ?? 56) }),
  });
  if (res.status !== 201) throw new Error(`storing the bench credential: ${res.status} ${await res.text()}`);
  const { id } = (await res.json()) as { id: string };
  return {
    ready: { base, headers, paths: { value: `/v1/credentials/${id}/value`, metadata: `/v1/credentials/${id}`, live: '/health/live' } },
    fillCache: (entries, valueBytes) => fillCache(app.get(CredentialCache, { strict: false }), app.get(CredentialsService, { strict: false }), entries, valueBytes),
    ...(spec.kind === 'host'
      ? {
          auditedReads: async () => {
            const audit = app.get(AuditService);
            await audit.flush();
            return audit.stats.readsFlushed;
          },
        }
      : {}),
    stop: async () => {
      await app.get(AuditService).flush();
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A bare Fastify route answering a JSON object of the same size as the host's value read. */
async function startBare(spec: ServerSpec): Promise<Started> {
  const app = Fastify({ logger: false });
  const body = {
    id: '00000000-0000-4000-8000-000000000000',
    tenantId: 'bench',
    integrationId: 'bench',
    connectionId: 'c1',
    type: 'api_key',
    version: 1,
    status: 'active',
    value: benchValue(spec.valueBytes ?? 56),
  };
  app.get('/bare', async () => body);
  app.get('/health/live', async () => ({ status: 'ok' }));
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  return { ready: { base, headers: {}, paths: { bare: '/bare', live: '/health/live' } }, stop: () => app.close() };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as ServerSpec;
  const server = spec.kind === 'bare-fastify' ? await startBare(spec) : await startHost(spec);
  let profiler: Session | null = null;
  let allocations = false;
  process.on('message', (m: string | { profileStart?: true | 'alloc'; profileStop?: string }) => {
    if (m === 'cpu') {
      process.send!({ cpu: process.cpuUsage() });
      return;
    }
    if (m === 'audited') {
      void (server.auditedReads?.() ?? Promise.resolve(null)).then((audited) => process.send!({ audited }));
      return;
    }
    if (typeof m === 'object' && 'fillCache' in m) {
      const { entries, valueBytes } = (m as { fillCache: { entries: number; valueBytes: number } }).fillCache;
      void server.fillCache!(entries, valueBytes).then((filled) => process.send!({ filled }));
      return;
    }
    if (typeof m === 'object' && m.profileStart) {
      profiler = new Session();
      profiler.connect();
      allocations = m.profileStart === 'alloc';
      if (allocations) {
        // Every allocation sampled, also of objects the young generation's GC collected soon after: what
        // makes the GC work per request, not what stays alive.
        void profiler
          .post('HeapProfiler.startSampling', {
            samplingInterval: 1024,
            includeObjectsCollectedByMajorGC: true,
            includeObjectsCollectedByMinorGC: true,
          })
          .then(() => process.send!('profiling'));
        return;
      }
      void profiler
        .post('Profiler.enable')
        .then(() => profiler!.post('Profiler.setSamplingInterval', { interval: 200 }))
        .then(() => profiler!.post('Profiler.start'))
        .then(() => process.send!('profiling'));
      return;
    }
    if (typeof m === 'object' && m.profileStop) {
      const path = m.profileStop;
      const stopped = allocations ? profiler!.post('HeapProfiler.stopSampling') : profiler!.post('Profiler.stop');
      void stopped.then(({ profile }) => {
        writeFileSync(path, JSON.stringify(profile));
        profiler!.disconnect();
        process.send!('profiled');
      });
      return;
    }
    if (m !== 'stop') return;
    server.stop().then(
      () => process.exit(0),
      (e) => {
        console.error(e);
        process.exit(1);
      },
    );
  });
  process.send!(server.ready);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
