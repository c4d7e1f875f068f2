import { z } from 'zod';
import { clockOptionSchema, resolveOptions, whenFieldsParsed, type Clock } from '@app/common';
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
  /** Override the credentials lib's per-type value-store policy for imported credentials. */
  valueStore?: ValueStoreKindInput;
  /** The lib's clock (else the host's `Clock`, else the system clock). */
  clock?: Clock;
}

const keySchema = z.string().refine((k) => parseLegacyKey(k) !== undefined, { message: 'must be 32 bytes as 64 hex characters or base64' });

const schema = z
  .object({
    keys: z.array(keySchema).min(1, 'at least one legacy key is required'),
    batchSize: z.number().int().min(1).max(10_000).default(10),
    concurrency: z
      .object({
        initial: z.number().int().min(1).max(1024).default(4),
        min: z.number().int().min(1).max(1024).default(1),
        max: z.number().int().min(1).max(1024).default(64),
        slowCallMs: z.number().int().min(0).max(600_000).default(1000),
      })
      .strict()
      .prefault({})
      .refine((c) => c.min <= c.initial && c.initial <= c.max, { message: 'must satisfy min <= initial <= max', ...whenFieldsParsed('initial', 'min', 'max') }),
    group: z
      .object({ maxConnections: z.number().int().min(1).max(10_000).default(50) })
      .strict()
      .prefault({}),
    maxThrottleRetries: z.number().int().min(0).max(1000).default(30),
    valueStore: z.enum(ValueStoreKind).optional(),
    clock: clockOptionSchema().optional(),
  })
  .strict();

export type ResolvedMigrationOptions = Omit<z.output<typeof schema>, 'keys'> & { keys: Buffer[] };

/** Validates once, at bootstrap; one `MigrationConfigurationError` (8001) lists every problem, never a key. */
export function resolveMigrationOptions(input: MigrationModuleOptions | undefined): ResolvedMigrationOptions {
  const o = resolveOptions(schema, input, (p) => new MigrationConfigurationError(p));
  return { ...o, keys: o.keys.map((k) => parseLegacyKey(k)!) };
}
