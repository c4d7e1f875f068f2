import type { Db } from './databases';

/**
 * Size profiles of the reliability run. `short` is what `npm test` runs (seconds per part, the same
 * assertions); `full` is `npm run reliability`; `medium` sits between, for a loaded machine.
 */
export type ProfileName = 'short' | 'medium' | 'full';

export interface Profile {
  name: ProfileName;
  /** PostgreSQL runs with Redis (cache L2, evictions, shared state): the deployment of N replicas. */
  faults: {
    operations: number;
    concurrency: number;
    credentials: number;
    databases: Db[];
    /** KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS of the host: the outage's recovery waits this long at least. */
    breakerHalfOpenMs: number;
  };
  /** `trials` in all, split over the databases; with `minutes`, each database stops starting trials after its share of them. */
  crashes: { trials: number; databases: Db[]; minutes?: number };
  badInput: { requests: number; databases: Db[] };
  isolation: { requests: number };
  hygiene: { credentials: number; databases: Db[] };
  /** Two replicas on PostgreSQL share a Redis that goes away for `outageMs` under load, then comes back. */
  redisLoss: { workers: number; credentials: number; beforeMs: number; outageMs: number; afterMs: number };
  /**
   * The run is cut into `windows` (the first is warm-up). p99 stability: the p99 of each of the last two windows at
   * most 20% above the second's, or `p99FloorMs` above when that is wider (the noise floor of a shared machine).
   * Every request due within the duration is sent, at most `maxLagMs` after its time (the sender's event loop stalls
   * on a busy machine and catches up; a longer gap is a pause in the load, not a rate held).
   */
  soak: { durationMs: number; ratePerSec: number; credentials: number; p99FloorMs: number; windows: number; maxLagMs: number; databases: Db[] };
}

export const PROFILES: Record<ProfileName, Profile> = {
  short: {
    name: 'short',
    // CI: PostgreSQL + Redis only for faults and crashes (each spec within ~60 s on a loaded machine).
    faults: { operations: 200, concurrency: 16, credentials: 32, databases: ['postgres'], breakerHalfOpenMs: 5_000 },
    crashes: { trials: 5, databases: ['postgres'] },
    badInput: { requests: 150, databases: ['sqlite', 'postgres'] },
    isolation: { requests: 120 },
    hygiene: { credentials: 8, databases: ['sqlite', 'postgres'] },
    redisLoss: { workers: 6, credentials: 24, beforeMs: 3_000, outageMs: 8_000, afterMs: 5_000 },
    // p99 floor 2.5 s: beside the other test files a 5-s window's p99 is its second-slowest request, and on this
    // VM kind (CI ~1.5x slower than before) three of six rehearsals saw one 1.1-2.2 s stall there (the soak alone
    // never did); CI once saw a 5.2 s one. Growth must hold in the last two windows (one stall reaches one window), so
    // latency that keeps growing still fails; `npm run reliability` (medium, full) keeps 10 ms. The sender's lag: < 100 ms
    // beside a CPU hog; CI saw it stall about 1 s near the end (the old count check failed: 474 of ≥ 475), and
    // once 2.6 s while the sender ran in the jest worker: it has its own process since (open-loop-sender.ts).
    soak: { durationMs: 20_000, ratePerSec: 25, credentials: 50, p99FloorMs: 2_500, windows: 4, maxLagMs: 2_500, databases: ['sqlite'] },
  },
  // What fits in ~15 minutes on this shared 2-vCPU machine (host boots alone take 10–30 s under load).
  medium: {
    name: 'medium',
    faults: { operations: 2_000, concurrency: 32, credentials: 128, databases: ['sqlite', 'postgres'], breakerHalfOpenMs: 30_000 },
    crashes: { trials: 20, databases: ['sqlite', 'postgres'] },
    badInput: { requests: 1_000, databases: ['sqlite', 'postgres'] },
    isolation: { requests: 500 },
    hygiene: { credentials: 40, databases: ['sqlite', 'postgres'] },
    redisLoss: { workers: 16, credentials: 64, beforeMs: 10_000, outageMs: 30_000, afterMs: 20_000 },
    soak: { durationMs: 120_000, ratePerSec: 50, credentials: 200, p99FloorMs: 10, windows: 10, maxLagMs: 2_500, databases: ['sqlite', 'postgres'] },
  },
  full: {
    name: 'full',
    faults: { operations: 10_000, concurrency: 32, credentials: 256, databases: ['sqlite', 'postgres'], breakerHalfOpenMs: 30_000 },
    crashes: { trials: 100, databases: ['sqlite', 'postgres'] },
    badInput: { requests: 5_000, databases: ['sqlite', 'postgres'] },
    isolation: { requests: 3_000 },
    hygiene: { credentials: 300, databases: ['sqlite', 'postgres'] },
    redisLoss: { workers: 32, credentials: 128, beforeMs: 30_000, outageMs: 120_000, afterMs: 60_000 },
    soak: { durationMs: 600_000, ratePerSec: 50, credentials: 500, p99FloorMs: 10, windows: 10, maxLagMs: 2_500, databases: ['sqlite', 'postgres'] },
  },
};

export function profile(name: string | undefined): Profile {
  const p = PROFILES[(name ?? 'full') as ProfileName];
  if (!p) throw new Error(`unknown profile ${JSON.stringify(name)}: use short, medium or full`);
  return p;
}
