import { performance } from 'node:perf_hooks';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { rawRequest } from '../../apps/keyvault-emulator/src/testing';
import { externalVaultEnv } from '../../test/support/cli';
import { startTestHost } from '../../test/support/host';
import { percentile } from '../support/measure';
import { dropRedisPrefix, redisEnv } from './databases';
import { apiClient, forEachLimited, isErrorShape, marker, QUIET_HOST_ENV, sleep, tenantKey, type ApiResponse } from './http';
import type { Profile } from './profile';
import { bounded, Examples, info, trace, type PartResult } from './report';

/** The host's documented default (KEY_VAULT_MAX_ATTEMPTS) that bounds the HTTP requests of one vault call. */
const MAX_ATTEMPTS = 4;
/** Requests in flight while seeding and while checking afterwards (not under faults: no figure depends on it). */
const CHECK_CONCURRENCY = 8;
/** Each of five fault kinds at this rate: 1 − (1 − r)^5 ≈ 20% of vault requests get a fault. */
const RATE = 1 - Math.pow(0.8, 1 / 5);
const FAULT_MIX = [
  { kind: 'status', status: 429, retryAfterSeconds: 1, rate: RATE },
  { kind: 'status', status: 500, rate: RATE },
  { kind: 'status', status: 503, retryAfterSeconds: 1, rate: RATE },
  { kind: 'reset', rate: RATE },
  { kind: 'latency', latencyMs: 2000, rate: RATE },
];

/** Sum of every sample of a Prometheus metric in an exposition text. */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

interface Tracked {
  id: string;
  /** Acknowledged writes: version → value. */
  acked: Map<number, string>;
  /** The last acknowledged value, and values of writes whose outcome the client never learned since. */
  current: string;
  unsure: Set<string>;
}

/**
 * Faults: the local vault injects ~20% mixed faults (429 with Retry-After, 500, 503 with Retry-After,
 * connection resets, 2 s latency) through its admin API while workers drive the host with mixed reads
 * and writes; then an outage opens the breaker, and its recovery is timed.
 */
export async function faults(p: Profile): Promise<PartResult> {
  const started = performance.now();
  const examples = new Examples();
  const vault = await KeyVaultEmulator.start({ quiet: true, throttle: false });
  const key = tenantKey('faults', 'acme');
  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await rawRequest(vault, method, path, { body });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text}`);
  };
  const { concurrency, operations } = p.faults;
  const codes: Record<string, number> = {};
  const latencies: number[] = [];
  const totals = { unmapped: 0, wrongReads: 0, failures: 0, lost: 0, checkedWrites: 0, vaultRequests: 0, faulted: 0, kvOps: 0, retries: 0, phase1S: 0, credentials: 0 };
  const perDb: string[] = [];
  let breaker: Awaited<ReturnType<typeof outage>> | undefined;
  /** Longest wait, over the databases, for the host to serve again once phase 1's faults were cleared (0: at once). */
  let phase1RecoveryS = 0;
  const check = (what: string, res: ApiResponse) => {
    if (res.status < 400) return true;
    totals.failures++;
    const typed = isErrorShape(res.status, res.body) && typeof res.body.code === 'number' && typeof res.body.codeName === 'string';
    if (!typed) {
      totals.unmapped++;
      examples.add(`unmapped error on ${what}: ${res.status} ${res.text.slice(0, 160)}`);
    } else codes[`${res.status} ${res.body.codeName}`] = (codes[`${res.status} ${res.body.codeName}`] ?? 0) + 1;
    return false;
  };
  try {
    for (const [d, db] of p.faults.databases.entries()) {
      const redis = db === 'postgres' ? redisEnv() : undefined;
      trace(`faults ${db}: boot`);
      const host = await startTestHost(db, {
        ...externalVaultEnv(vault),
        AUTH_API_KEYS: JSON.stringify([key.entry]),
        ...QUIET_HOST_ENV,
        // Every read goes to the vault: the cache would hide the faults.
        CACHE_TTL_MS: '1',
        KEY_VAULT_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
        // The short (CI) profile shortens the breaker's half-open delay; medium and full keep the 30 s default.
        KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS: String(p.faults.breakerHalfOpenMs),
        ...redis,
      });
      try {
        const call = apiClient(host.baseUrl, key.key, 120_000);
        const metrics = async () => (await fetch(`${host.baseUrl}/metrics`)).text();
        // Seeded (faults off) a few at a time: index i stays credential i, so worker ownership is unchanged.
        const tracked: Tracked[] = new Array(p.faults.credentials);
        await forEachLimited(p.faults.credentials, CHECK_CONCURRENCY, async (i) => {
          const value = marker('f');
          const res = await call('POST', '/v1/credentials', { integrationId: 'faults', connectionId: `c${i}`, type: 'api_key', value, valueStore: 'vault' });
          if (res.status !== 201) throw new Error(`seeding: ${res.status} ${res.text}`);
          tracked[i] = { id: res.body.id, acked: new Map([[res.body.version as number, value]]), current: value, unsure: new Set() };
        });

        trace(`faults ${db}: seeded`);
        // ── phase 1: mixed operations under 20% mixed faults ──
        const m0 = await metrics();
        vault.resetStats();
        for (const f of FAULT_MIX) await admin('POST', '/_emulator/faults', f);
        const failuresBefore = totals.failures;
        let next = 0;
        const created: Tracked[] = [];
        const phase1Start = performance.now();
        await Promise.all(
          Array.from({ length: concurrency }, async (_, w) => {
            // Each worker owns every concurrency-th credential, so the order of its writes is known.
            const mine = tracked.filter((_, i) => i % concurrency === w);
            for (let n = next++; n < operations; n = next++) {
              const t = mine[n % mine.length];
              const dice = (n * 7919) % 100;
              const t0 = performance.now();
              try {
                if (dice < 45) {
                  const res = await call('GET', `/v1/credentials/${t.id}/value`);
                  if (check('read', res) && res.body.value !== t.current && !t.unsure.has(res.body.value)) {
                    totals.wrongReads++;
                    examples.add(`${db}: read of ${t.id} returned neither the last acknowledged value nor an unconfirmed write`);
                  }
                } else if (dice < 80) {
                  const value = marker('f');
                  const res = await call('POST', `/v1/credentials/${t.id}/rotate`, { value });
                  if (check('rotate', res)) {
                    t.acked.set(res.body.version, value);
                    t.current = value;
                    t.unsure.clear();
                  } else t.unsure.add(value);
                } else if (dice < 90) {
                  const value = marker('f');
                  const res = await call('POST', '/v1/credentials', { integrationId: 'faults', connectionId: `n${n}`, type: 'api_key', value, valueStore: 'vault' });
                  if (check('store', res)) {
                    const t2: Tracked = { id: res.body.id, acked: new Map([[res.body.version, value]]), current: value, unsure: new Set() };
                    mine.push(t2);
                    created.push(t2);
                  }
                } else {
                  check('metadata', await call('GET', dice < 95 ? `/v1/credentials/${t.id}` : '/v1/credentials?limit=50'));
                }
              } catch (e) {
                totals.unmapped++;
                examples.add(`${db}: the host dropped a request: ${(e as Error).message}`);
              }
              latencies.push(performance.now() - t0);
            }
          }),
        );
        const phase1S = (performance.now() - phase1Start) / 1000;
        tracked.push(...created);
        const stats = vault.stats();
        const m1 = await metrics();
        await admin('DELETE', '/_emulator/faults');
        const kvOps = metricSum(m1, 'credential_vault_keyvault_operations_total') - metricSum(m0, 'credential_vault_keyvault_operations_total');
        const faulted =
          stats.total -
          Object.entries(stats.byStatus)
            .filter(([s]) => s.startsWith('2') || s === '401' || s === '404')
            .reduce((a, [, n]) => a + n, 0);
        totals.kvOps += kvOps;
        totals.retries += metricSum(m1, 'credential_vault_keyvault_retries_total') - metricSum(m0, 'credential_vault_keyvault_retries_total');
        totals.vaultRequests += stats.total;
        totals.faulted += faulted;
        totals.phase1S += phase1S;
        totals.credentials += tracked.length;

        trace(`faults ${db}: phase 1 done`);
        // Streaks of injected failures can open the breaker during phase 1 (5 consecutive failed attempts:
        // expected about once per ~10k requests at these rates): it then fails fast until it half-opens. The
        // checks below ask whether writes were LOST, so they wait until the vault client serves again —
        // reading through a still-open breaker answers 503, which says nothing about the data.
        if (tracked.length > 0) {
          const waitedS = await recovered(host.baseUrl, call, tracked[0].id, p.faults.breakerHalfOpenMs + 60_000);
          if (waitedS === undefined) throw new Error(`faults ${db}: the host did not serve reads again after the faults were cleared`);
          phase1RecoveryS = Math.max(phase1RecoveryS, waitedS);
        }
        // ── every acknowledged write readable with its value; the current value is the last acknowledged one ──
        // Each credential is checked on its own (faults cleared, no writes running): a few at a time.
        await forEachLimited(tracked.length, CHECK_CONCURRENCY, async (i) => {
          const t = tracked[i];
          for (const [version, value] of t.acked) {
            totals.checkedWrites++;
            const res = await call('GET', `/v1/credentials/${t.id}/versions/${version}/value`);
            if (res.status !== 200 || res.body.value !== value) {
              totals.lost++;
              examples.add(`${db}: acknowledged version ${version} of ${t.id}: ${res.status}, ${res.status === 200 ? 'another value' : res.text.slice(0, 120)}`);
            }
          }
          const cur = await call('GET', `/v1/credentials/${t.id}/value`);
          if (cur.status !== 200 || (cur.body.value !== t.current && !t.unsure.has(cur.body.value))) {
            totals.lost++;
            examples.add(`${db}: current value of ${t.id} is not its last acknowledged write (${cur.status})`);
          }
        });
        perDb.push(
          `${db === 'postgres' ? 'PostgreSQL + Redis' : 'SQLite'}: ${operations} operations in ${phase1S.toFixed(1)} s (${Math.round(operations / phase1S)} ops/s) on ${tracked.length} credentials; the vault saw ${stats.total} requests, ${faulted} of them faulted or reset (${((faulted / Math.max(1, stats.total)) * 100).toFixed(1)}%); ${totals.failures - failuresBefore} operations answered a typed error`,
        );
        // ── phase 2 (once: the breaker is the vault client's, whatever the database): an outage opens it ──
        trace(`faults ${db}: writes checked`);
        if (d === p.faults.databases.length - 1) breaker = await outage(host.baseUrl, call, tracked[0].id, metrics, admin, check);
      } finally {
        await host.close();
        if (redis) await dropRedisPrefix(redis.REDIS_URL, redis.REDIS_KEY_PREFIX);
      }
    }
    const b = breaker!;
    latencies.sort((a, b) => a - b);
    const codeText = Object.entries(codes)
      .sort()
      .map(([c, n]) => `${c} ×${n}`)
      .join(', ');
    const dbs = p.faults.databases.map((db) => (db === 'postgres' ? 'PostgreSQL with Redis (cache L2, evictions, shared state)' : 'SQLite')).join(', then ');
    return {
      part: 'Faults',
      profile: p.name,
      method: `The host (${dbs}; the local vault as an external vault over HTTPS, cache TTL 1 ms so every read reaches the vault, KEY_VAULT_MAX_ATTEMPTS ${MAX_ATTEMPTS}) is driven by ${concurrency} workers with mixed operations: 45% value reads, 35% rotations, 10% new credentials, 10% metadata reads and lists. Through the vault's admin API (POST /_emulator/faults) five faults are injected, each on ${(RATE * 100).toFixed(2)}% of vault requests (≈20% of requests faulted in all): 429 with Retry-After 1 s, 500, 503 with Retry-After 1 s, a connection reset, 2 s of latency. Each worker owns its credentials, so the order of its writes is known: afterwards (faults cleared, and once the host serves reads again: a streak of faults may have opened the breaker) every acknowledged version must read back with its value and the current value must be the last acknowledged write (or a write whose answer was an error — the client cannot know those). Every error answer must be the documented shape with a numeric \`code\` and a \`codeName\`. Then (once, on the last database: the breaker belongs to the vault client) every vault request answers 503: the breaker must open (CIRCUIT_OPEN), /health/ready must answer 503 with keyVault down, and after the faults are cleared reads and readiness must come back (the breaker half-opens after KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS: ${p.faults.breakerHalfOpenMs / 1000} s in this run). Retries are read from /metrics and the vault's own request count.`,
      ran: `${perDb.join(' · ')}. Error answers under the faults: ${codeText || 'none'}; the breaker opened after ${b.callsToOpen} reads of the outage and the host recovered ${Math.round(b.recoverS)} s after it ended.`,
      figures: [
        info('operations', operations * p.faults.databases.length),
        info('vault requests answered with an error or reset (2 s latency, ~4.4%, comes on top)', Math.round((totals.faulted / Math.max(1, totals.vaultRequests)) * 1000) / 10, '%'),
        info('operations failed (typed error answered)', totals.failures - b.failures),
        info('latency p50', Math.round(percentile(latencies, 50)), 'ms'),
        info('latency p99', Math.round(percentile(latencies, 99)), 'ms'),
        info('seconds until the host served again after the faults were cleared (a breaker opened by a streak of faults stays open until it half-opens)', Math.round(phase1RecoveryS * 10) / 10, 's'),
        info('acknowledged writes checked', totals.checkedWrites),
        bounded('lost writes', totals.lost, '=', 0),
        bounded('reads of a value never written', totals.wrongReads, '=', 0),
        bounded('unmapped errors', totals.unmapped, '=', 0),
        bounded('vault requests per Key Vault call', Math.round((totals.vaultRequests / Math.max(1, totals.kvOps)) * 100) / 100, '≤', MAX_ATTEMPTS),
        info('retries per Key Vault call', Math.round((totals.retries / Math.max(1, totals.kvOps)) * 100) / 100),
        bounded('breaker opened under the outage', b.opened ? 1 : 0, '=', 1),
        info('calls until the breaker opened', b.callsToOpen),
        info('seconds until the breaker opened', Math.round(b.openS * 10) / 10, 's'),
        bounded('/health/ready while open (503 and keyVault down)', b.readyDown ? 1 : 0, '=', 1),
        bounded('breaker state metric while open (2 = open)', b.breakerStateOpen, '=', 2),
        bounded('recovered (reads and /health/ready 200) after the outage', b.recovered ? 1 : 0, '=', 1),
        info('seconds to recover after the outage ended', Math.round(b.recoverS), 's'),
        bounded('breaker state metric after recovery', b.breakerStateAfter, '=', 0),
      ],
      examples: examples.list,
      durationS: Math.round((performance.now() - started) / 1000),
    };
  } finally {
    await vault.stop();
  }
}

/** Every vault request answers 503: the breaker must open, readiness follow, and both recover once it ends. */
async function outage(baseUrl: string, call: ReturnType<typeof apiClient>, probe: string, metrics: () => Promise<string>, admin: (method: string, path: string, body?: unknown) => Promise<void>, check: (what: string, res: ApiResponse) => boolean) {
  await admin('POST', '/_emulator/faults', { kind: 'status', status: 503, retryAfterSeconds: 0 });
  let opened = false;
  let callsToOpen = 0;
  let failures = 0;
  const outageStart = performance.now();
  while (!opened && callsToOpen < 30) {
    callsToOpen++;
    const res = await call('GET', `/v1/credentials/${probe}/value`);
    if (res.status < 400) break;
    failures++;
    check('read during outage', res);
    opened = res.body?.codeName === 'CIRCUIT_OPEN';
  }
  const openS = (performance.now() - outageStart) / 1000;
  const readyDuring = await fetch(`${baseUrl}/health/ready`);
  const readyDuringBody = (await readyDuring.json()) as { details?: { keyVault?: { status?: string } } };
  const breakerStateOpen = metricSum(await metrics(), 'credential_vault_keyvault_circuit_breaker_state');
  await admin('DELETE', '/_emulator/faults');
  const recoverStart = performance.now();
  const recoveredS = await recovered(baseUrl, call, probe, 120_000, 1000, true);
  const recoverS = recoveredS ?? (performance.now() - recoverStart) / 1000;
  const breakerStateAfter = metricSum(await metrics(), 'credential_vault_keyvault_circuit_breaker_state');
  return { opened, callsToOpen, failures, openS, readyDown: readyDuring.status === 503 && readyDuringBody.details?.keyVault?.status === 'down', breakerStateOpen, recovered: recoveredS !== undefined, recoverS, breakerStateAfter };
}

/**
 * Seconds until a read of `probe` and /health/ready both answer 200 (polled every `everyMs`; at once when
 * they already do), or undefined after `timeoutMs`.
 */
async function recovered(baseUrl: string, call: ReturnType<typeof apiClient>, probe: string, timeoutMs: number, everyMs = 500, sleepFirst = false): Promise<number | undefined> {
  const start = performance.now();
  if (sleepFirst) await sleep(everyMs);
  while (performance.now() - start < timeoutMs) {
    const read = await call('GET', `/v1/credentials/${probe}/value`);
    const ready = await fetch(`${baseUrl}/health/ready`);
    await ready.arrayBuffer();
    if (read.status === 200 && ready.status === 200) return (performance.now() - start) / 1000;
    await sleep(everyMs);
  }
  return undefined;
}
