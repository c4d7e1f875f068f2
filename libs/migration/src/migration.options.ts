import { z } from 'zod';
import { clockOptionSchema, integerInRange, MUST_BE_AN_OBJECT, resolveOptions, whenFieldsParsed, type Clock } from '@app/common';
import { ValueStoreKind, type ValueStoreKindInput } from '@app/credentials';
import { MigrationConfigurationError } from './errors/migration.errors';
import { parseLegacyKey } from './legacy/legacy-cipher';

/** Options of `MigrationModule.forRoot` / `forRootAsync`. The host reads them from its config (never this lib). */
export interface MigrationModuleOptions {
  /**
   * The legacy AES-256-GCM keys, 32 bytes each as 64 hex characters or base64, tried in this order
   * (the report names the index of the key that decrypted each row). At least one.
   */
  keys: string[];
  /** Connections read from the source per page (and per progress event). @default 10 */
  batchSize?: number;
  /** Adaptive concurrency of vault writes (AIMD on 429 / RATE_LIMITED). */
  concurrency?: {
    /** @default 4 */
    initial?: number;
    /** @default 1 */
    min?: number;
    /** @default 64 */
    max?: number;
    /**
     * A vault client that retries 429s itself hides them: a call this much slower than usual (ms) is
     * then counted as throttled. 0 turns that off — for a client that hands 429s back (its
     * `maxDelayMs` below the vault's Retry-After), whose RATE_LIMITED errors are the exact signal.
     * @default 1000
     */
    slowCallMs?: number;
  };
  /**
   * Group commit: the connections migrated in one database transaction (their credentials' rows,
   * MIGRATE audit rows and checkpoints: one `storeMany`), after their vault writes ran concurrently.
   * `ceil(concurrency.max / maxConnections) + 1` groups are in flight at once.
   */
  group?: {
    /** @default 50 */
    maxConnections?: number;
  };
  /** Throttled attempts of one credential before it is reported as failed. @default 30 */
  maxThrottleRetries?: number;
  /**
   * How long (ms) the run rides out a vault that fails as in an outage — the vault client's breaker open (CIRCUIT_OPEN),
   * or a 5xx or timeout that outlasted its retries: the run's vault calls wait until the breaker lets a trial through
   * and are retried, no new group starts meanwhile. Failing longer than this stops the run with
   * `MIGRATION_VAULT_UNAVAILABLE` (8008, resumable). 0: stop at the first such failure. At most 300000: the values a group
   * wrote before the outage must still commit within the credentials lib's 10-minute write deadline.
   * @default 120000
   */
  maxVaultOutageMs?: number;
  /** Override the credentials lib's per-type value-store policy for imported credentials. */
  valueStore?: ValueStoreKindInput;
  /** The lib's clock (else the host's `Clock`, else the system clock). */
  clock?: Clock;
}

const KEY_FORMAT = 'must be 32 bytes as 64 hex characters or base64';
const KEYS_WANTED = 'must list the legacy keys (at least one), each 32 bytes as 64 hex characters or base64';
const keySchema = z.string({ error: KEY_FORMAT }).refine((k) => parseLegacyKey(k) !== undefined, { message: KEY_FORMAT });

// Every field says what it wants, as the other libs' options do (never zod's "Invalid input: expected …").
const schema = z
  .object(
    {
      keys: z.array(keySchema, { error: KEYS_WANTED }).min(1, KEYS_WANTED),
      batchSize: integerInRange(1, 10_000).default(10),
      concurrency: z
        .object(
          {
            initial: integerInRange(1, 1024).default(4),
            min: integerInRange(1, 1024).default(1),
            max: integerInRange(1, 1024).default(64),
            slowCallMs: integerInRange(0, 600_000, { message: 'must be an integer of milliseconds in 0..600000 (0: off)' }).default(1000),
          },
          MUST_BE_AN_OBJECT,
        )
        .strict()
        .prefault({})
        .refine((c) => c.min <= c.initial && c.initial <= c.max, { message: 'must satisfy min <= initial <= max', ...whenFieldsParsed('initial', 'min', 'max') }),
      group: z
        .object({ maxConnections: integerInRange(1, 10_000).default(50) }, MUST_BE_AN_OBJECT)
        .strict()
        .prefault({}),
      maxThrottleRetries: integerInRange(0, 1000).default(30),
      maxVaultOutageMs: integerInRange(0, 300_000, { message: 'must be an integer of milliseconds in 0..300000 (0: stop at the first failure)' }).default(120_000),
      valueStore: z.enum(ValueStoreKind, { error: "must be 'vault' or 'envelope'" }).optional(),
      clock: clockOptionSchema().optional(),
    },
    MUST_BE_AN_OBJECT,
  )
  .strict();

export type ResolvedMigrationOptions = Omit<z.output<typeof schema>, 'keys'> & { keys: Buffer[] };

/** Validates once, at bootstrap; one `MigrationConfigurationError` (8001) lists every problem, never a key. */
export function resolveMigrationOptions(input: MigrationModuleOptions | undefined): ResolvedMigrationOptions {
  const o = resolveOptions(schema, input, (p) => new MigrationConfigurationError(p));
  return { ...o, keys: o.keys.map((k) => parseLegacyKey(k)!) };
}
