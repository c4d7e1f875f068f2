import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { startReplica, type HostBuild, type Replica } from '../../test/cluster/replicas';
import { externalVaultEnv } from '../../test/support/cli';
import { median, percentile, round } from '../support/measure';
import { hostDatabase, type Db } from './databases';
import { apiClient, marker, QUIET_HOST_ENV, tenantKey } from './http';
import { runOpenLoop } from './open-loop-sender';
import { hostBuild, rssBytes } from './processes';
import type { Profile } from './profile';
import { bounded, Examples, info, type PartResult } from './report';

/**
 * Soak: the host as its own process (SQLite, the local vault over HTTPS in the harness's process) under
 * an open-loop load at a fixed rate from a third process — requests are sent on schedule whether or not
 * earlier ones have answered — of mixed reads and writes; its RSS is sampled from /proc every second.
 */
export async function soak(p: Profile): Promise<PartResult> {
  const started = performance.now();
  const examples = new Examples();
  const { durationMs, ratePerSec, p99FloorMs, windows, maxLagMs } = p.soak;
  const dir = mkdtempSync(join(tmpdir(), 'cv-soak-'));
  const vault = await KeyVaultEmulator.start({ quiet: true, throttle: false });
  const build = await hostBuild();
  try {
    const runs = [];
    for (const db of p.soak.databases) runs.push(await soakOn(p, db, dir, build, vault, examples));
    const all = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
    // The figures held to bounds are the worst database's.
    const worstRss = runs.reduce((a, r) => (r.rssGrowth > a.rssGrowth ? r : a));
    const worstP99 = runs.reduce((a, r) => (r.p99BeyondBand > a.p99BeyondBand ? r : a));
    return {
      part: 'Soak',
      profile: p.name,
      method: `The host runs as its own process (\`node apps/api/src/main.js\`; per database in turn: SQLite, or PostgreSQL with Redis as cache L2, eviction bus and shared state; the local vault over HTTPS as an external vault, default cache). After ${p.soak.credentials} credentials are stored (vault and envelope), an open-loop client in its own process (its pauses are not the test runner's) sends ${ratePerSec} requests/s on schedule — 80% value reads, 10% rotations, 5% metadata reads, 5% list pages — for ${durationMs / 1000} s: request n is due n/${ratePerSec} s into the run, every one due within it is sent however late the client's own event loop wakes, and the latest send may be at most ${maxLagMs} ms behind its time (a longer gap is a pause in the load, not the rate held); the host's RSS is read from /proc every second. The run is cut into ${windows} windows of ${durationMs / windows / 1000} s: the first is warm-up; RSS growth is the median RSS of the last window against the second's; p99 stability: the p99 latency of each of the last two windows may exceed the second window's by at most 20%, or ${p99FloorMs} ms when 20% of the p99 is less (below that the band is inside the scheduling noise of a shared 2-vCPU machine; the CI profile, 20 s beside other test files, uses four windows and 2.5 s); the figure is the smaller excess of the two, so growth that persists fails and one stall of a co-running process, which reaches one window's p99, does not. With two databases the bounded figures are the worse one's. The rate is one this shared machine keeps up with: "at most N in flight" below shows the host kept pace.`,
      ran: runs.map((r) => r.ran).join(' · '),
      figures: [
        info('requests', runs.reduce((a, r) => a + r.requests, 0)),
        info('requests scheduled', runs.reduce((a, r) => a + r.scheduled, 0)),
        bounded('sender lag behind schedule (max)', round(Math.max(...runs.map((r) => r.maxLagMs)), 1), '≤', maxLagMs, 'ms'),
        info("sender's event-loop delay (max)", round(Math.max(...runs.map((r) => r.loopDelayMaxMs)), 1), 'ms'),
        info('rate', ratePerSec, 'req/s'),
        bounded('errors', runs.reduce((a, r) => a + r.errors, 0), '=', 0),
        info('latency p50', round(percentile(all, 50), 2), 'ms'),
        info('latency p99', round(percentile(all, 99), 2), 'ms'),
        info('RSS after warm-up', round(worstRss.rssAfterWarmup / 2 ** 20, 1), 'MiB'),
        bounded('RSS growth after warm-up', round(worstRss.rssGrowth * 100, 1), '≤', 10, '%'),
        info('p99 second window', round(worstP99.p99Second, 2), 'ms'),
        info('p99 window before last', round(worstP99.p99BeforeLast, 2), 'ms'),
        info('p99 last window', round(worstP99.p99Last, 2), 'ms'),
        bounded('p99 growth beyond the band (last two windows vs second)', round(worstP99.p99BeyondBand, 2), '=', 0, 'ms'),
        info('p99 change (last vs second window)', round(worstP99.p99Change * 100, 1), '%'),
      ],
      examples: examples.list,
      durationS: Math.round((performance.now() - started) / 1000),
    };
  } finally {
    build.remove();
    await vault.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One soak of one host process on one database. */
async function soakOn(p: Profile, db: Db, dir: string, build: HostBuild, vault: KeyVaultEmulator, examples: Examples) {
  const { durationMs, ratePerSec, p99FloorMs, windows } = p.soak;
  const key = tenantKey('soak', 'acme');
  const database = await hostDatabase(db, dir, 'soak');
  let host: Replica | undefined;
  try {
    host = await startReplica(build, `soak-${db}`, {
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'warn',
      ...database.env,
      ...externalVaultEnv(vault),
      AUTH_API_KEYS: JSON.stringify([key.entry]),
      ...QUIET_HOST_ENV,
    });
    const call = apiClient(host.url, key.key);
    const ids: string[] = [];
    for (let i = 0; i < p.soak.credentials; i++) {
      const res = await call('POST', '/v1/credentials', { integrationId: 'soak', connectionId: `c${i}`, type: 'api_key', value: marker('soak'), valueStore: i % 2 ? 'vault' : 'envelope' });
      if (res.status !== 201) throw new Error(`seeding: ${res.status} ${res.text}`);
      ids.push(res.body.id);
    }
    let rss: { at: number; bytes: number }[] = [];
    let sampler: NodeJS.Timeout | undefined;
    // The load runs in its own process (open-loop-sender.ts); RSS is sampled here on the run's clock (its origin the
    // child's start, however late this process reads its message) while the load is sent, as the requests' `at`.
    const load = await runOpenLoop({ baseUrl: host.url, apiKey: key.key, ids, ratePerSec, durationMs }, (t0Run) => {
      sampler = setInterval(() => {
        void rssBytes(host!.pid).then((bytes) => rss.push({ at: performance.now() - t0Run, bytes }), () => undefined);
      }, 1000);
    }).finally(() => clearInterval(sampler));
    const { samples, scheduled, maxLagMs, errors, maxInFlight } = load;
    rss = rss.filter((r) => r.at <= load.sentMs);
    for (const e of load.examples) examples.add(e);
    const runS = load.runMs / 1000;

    // Windows: a tenth of the full run (its minutes), a quarter of the short one; the first is warm-up.
    const win = durationMs / windows;
    const p99Of = (from: number, to: number) =>
      percentile(
        samples
          .filter((s) => s.at >= from && s.at < to)
          .map((s) => s.ms)
          .sort((a, b) => a - b),
        99,
      );
    const p99Second = p99Of(win, 2 * win);
    const p99BeforeLast = p99Of(durationMs - 2 * win, durationMs - win);
    const p99Last = p99Of(durationMs - win, durationMs);
    const p99Change = (p99Last - p99Second) / p99Second;
    const p99Bound = Math.max(0.2 * p99Second, p99FloorMs);
    // Growth, and only when it holds in both of the last two windows: latency that keeps growing (a leak, a
    // table scan getting longer) raises both; one stall of a co-running process raises one window's p99 only.
    const beyond = (p99: number) => Math.max(0, p99 - p99Second - p99Bound);
    const rssIn = (from: number, to: number) => median(rss.filter((r) => r.at >= from && r.at < to).map((r) => r.bytes));
    const rssAfterWarmup = rssIn(win, 2 * win);
    const rssEnd = rssIn(durationMs - win, durationMs + 1000);
    const rssGrowth = (rssEnd - rssAfterWarmup) / rssAfterWarmup;
    return {
      requests: samples.length,
      scheduled,
      maxLagMs,
      loopDelayMaxMs: load.loopDelayMaxMs,
      errors,
      latencies: samples.map((s) => s.ms),
      rssAfterWarmup,
      rssGrowth,
      p99Second,
      p99Last,
      p99Change,
      p99BeyondBand: Math.min(beyond(p99Last), beyond(p99BeforeLast)),
      p99BeforeLast,
      ran: `${database.label}: ${samples.length} of ${scheduled} scheduled requests in ${round(runS, 1)} s at ${ratePerSec}/s on ${ids.length} credentials, sent at most ${round(maxLagMs, 1)} ms behind schedule; at most ${maxInFlight} in flight; RSS ${round(rssAfterWarmup / 2 ** 20, 1)} MiB after warm-up → ${round(rssEnd / 2 ** 20, 1)} MiB at the end; p99 ${round(p99Second, 1)} ms (second window) vs ${round(p99BeforeLast, 1)} / ${round(p99Last, 1)} ms (last two)`,
    };
  } finally {
    await host?.stop();
    await database.drop();
  }
}
