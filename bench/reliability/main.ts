import { performance } from 'node:perf_hooks';
import { badInput } from './bad-input';
import { crashes } from './crashes';
import { faults } from './faults';
import { hygiene } from './hygiene';
import { isolation } from './isolation';
import { profile, type Profile } from './profile';
import type { Db } from './databases';
import { redisLoss } from './redis-loss';
import { failedFigures, figureLines, writeReliabilityDoc, type PartResult } from './report';
import { soak } from './soak';

/**
 * `npm run reliability [-- --profile short|medium|full] [--parts faults,crashes,...] [--databases sqlite,postgres] [--trials N] [--minutes M] [--note "..."]`:
 * runs the parts in order, prints one JSON line per figure, rewrites each part's section of
 * docs/RELIABILITY.md, and exits 1 when a bound does not hold.
 */
const PARTS: Record<string, (p: Profile) => Promise<PartResult>> = {
  faults,
  crashes,
  'bad-input': badInput,
  isolation,
  hygiene,
  'redis-loss': redisLoss,
  soak,
};

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** `--databases sqlite` (or `postgres`, or both) narrows every part that runs per database: one part at full size in less time. */
function withDatabases(p: Profile, list: string | undefined): Profile {
  if (list === undefined) return p;
  const dbs = list.split(',') as Db[];
  for (const d of dbs) if (d !== 'sqlite' && d !== 'postgres') throw new Error(`unknown database ${d}: use sqlite, postgres or both`);
  const narrowed = { ...p } as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(p)) if (v && typeof v === 'object' && 'databases' in v) narrowed[k] = { ...v, databases: dbs };
  return narrowed as unknown as Profile;
}

/**
 * `--trials N` sets the crash part's trial count (the profile's is split over the databases), `--minutes M`
 * time-boxes it (each database stops starting trials after its share; the report says how many ran):
 * a full-size run cut to the time there is.
 */
function withTrials(p: Profile, n: string | undefined, m: string | undefined): Profile {
  const positive = (v: string, what: string) => {
    const x = Number(v);
    if (!Number.isFinite(x) || x <= 0) throw new Error(`--${what} ${v}: a positive number`);
    return x;
  };
  const crashes = { ...p.crashes };
  if (n !== undefined) crashes.trials = Math.round(positive(n, 'trials'));
  if (m !== undefined) crashes.minutes = positive(m, 'minutes');
  return { ...p, crashes };
}

async function main(): Promise<void> {
  const p = withTrials(withDatabases(profile(flag('profile') ?? process.env.RELIABILITY_PROFILE ?? 'full'), flag('databases')), flag('trials'), flag('minutes'));
  const names = (flag('parts') ?? Object.keys(PARTS).join(',')).split(',');
  for (const n of names) if (!PARTS[n]) throw new Error(`unknown part ${n}: use ${Object.keys(PARTS).join(', ')}`);
  const started = performance.now();
  const results: PartResult[] = [];
  for (const n of names) {
    process.stderr.write(`reliability: ${n} (${p.name})…\n`);
    const r = await PARTS[n](p);
    for (const line of figureLines(r)) process.stdout.write(`${line}\n`);
    results.push(r);
    // Each part's section is written as soon as it is done: a long run that stops keeps what it measured.
    writeReliabilityDoc([r], flag('note') ?? '');
  }
  const failed = results.flatMap((r) => failedFigures(r).map((f) => `${r.part}: ${f.name} = ${f.value} (bound ${f.target})`));
  process.stderr.write(`reliability: ${results.length} parts in ${Math.round((performance.now() - started) / 1000)} s; ${failed.length ? `bounds not held:\n  ${failed.join('\n  ')}` : 'every bound held'}\n`);
  // Hosts and pools may keep handles open: the run is over.
  process.exit(failed.length ? 1 : 0);
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(2);
});
