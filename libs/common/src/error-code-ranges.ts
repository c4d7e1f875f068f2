/**
 * The one registry of error-code blocks: each lib (or kit of libs/common) owns one inclusive range, so
 * codes never collide and the host knows which status table must answer for a code. A new lib
 * registers its range here before it defines its first code; the host then needs its status table
 * to compile (the specs check ranges are disjoint and each enum stays in its own block).
 */
export const ERROR_CODE_RANGES = {
  keyVault: [1000, 1999],
  credentials: [2000, 2999],
  rotation: [3000, 3999],
  oauthRefresh: [4000, 4999],
  audit: [5000, 5999],
  /** libs/common's persistence kit: transaction runner (60xx) and outbox (61xx). */
  persistence: [6000, 6999],
  /** libs/common's scheduled jobs (`ScheduledJobs`). */
  jobs: [7000, 7999],
  /** libs/migration: legacy credential import. */
  migration: [8000, 8999],
  /** libs/common's lock helpers. */
  lock: [9000, 9999],
  /** libs/keys: tenant-scoped Key Vault keys and cryptography. */
  keys: [10000, 10999],
  /** apps/api's own refusals (`HostErrorCode`: validation, authentication, routing, limits): reserved so no lib takes them. */
  host: [90000, 90999],
} as const satisfies Record<string, readonly [number, number]>;

export type ErrorCodeRangeName = keyof typeof ERROR_CODE_RANGES;

/** The lib whose block holds `code`, or undefined for a code no lib owns. */
export function errorCodeRangeOf(code: number): ErrorCodeRangeName | undefined {
  for (const [name, [from, to]] of Object.entries(ERROR_CODE_RANGES)) {
    if (code >= from && code <= to) return name as ErrorCodeRangeName;
  }
  return undefined;
}

/** The numeric members of a TypeScript enum (its object also maps each number back to a name). */
export function enumCodes(enumObject: Record<string, string | number>): number[] {
  return Object.values(enumObject).filter((v): v is number => typeof v === 'number');
}
