/**
 * Size profiles of the reliability run. `short` is what `npm test` runs (seconds per part, the same
 * assertions); `full` is `npm run reliability`; `medium` sits between, for a loaded machine.
 */
export type ProfileName = 'short' | 'medium' | 'full';

export interface Profile {
  name: ProfileName;
  faults: { operations: number; concurrency: number; credentials: number };
  crashes: { trials: number };
  badInput: { requests: number; databases: ('sqlite' | 'postgres')[] };
  isolation: { requests: number };
  hygiene: { credentials: number; databases: ('sqlite' | 'postgres')[] };
  /**
   * The run is cut into `windows` (the first is warm-up). p99 stability: the last window's p99 within 20% of
   * the second's, or within `p99FloorMs` when that is wider (the noise floor of a shared machine).
   */
  soak: { durationMs: number; ratePerSec: number; credentials: number; p99FloorMs: number; windows: number };
}

export const PROFILES: Record<ProfileName, Profile> = {
  short: {
    name: 'short',
    faults: { operations: 200, concurrency: 16, credentials: 32 },
    crashes: { trials: 5 },
    badInput: { requests: 150, databases: ['sqlite', 'postgres'] },
    isolation: { requests: 120 },
    hygiene: { credentials: 8, databases: ['sqlite', 'postgres'] },
    soak: { durationMs: 20_000, ratePerSec: 25, credentials: 50, p99FloorMs: 150, windows: 4 },
  },
  // What fits in ~15 minutes on this shared 2-vCPU machine (host boots alone take 10–30 s under load).
  medium: {
    name: 'medium',
    faults: { operations: 2_000, concurrency: 32, credentials: 128 },
    crashes: { trials: 10 },
    badInput: { requests: 1_000, databases: ['sqlite', 'postgres'] },
    isolation: { requests: 500 },
    hygiene: { credentials: 40, databases: ['sqlite', 'postgres'] },
    soak: { durationMs: 120_000, ratePerSec: 50, credentials: 200, p99FloorMs: 10, windows: 10 },
  },
  full: {
    name: 'full',
    faults: { operations: 10_000, concurrency: 32, credentials: 256 },
    crashes: { trials: 50 },
    badInput: { requests: 5_000, databases: ['sqlite', 'postgres'] },
    isolation: { requests: 3_000 },
    hygiene: { credentials: 300, databases: ['sqlite', 'postgres'] },
    soak: { durationMs: 600_000, ratePerSec: 50, credentials: 500, p99FloorMs: 10, windows: 10 },
  },
};

export function profile(name: string | undefined): Profile {
  const p = PROFILES[(name ?? 'full') as ProfileName];
  if (!p) throw new Error(`unknown profile ${JSON.stringify(name)}: use short, medium or full`);
  return p;
}
