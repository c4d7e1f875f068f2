import {
  booleanOption,
  Clock,
  clockOptionSchema,
  cronExpressionSchema,
  describeProblems,
  integerInRange,
  MUST_BE_AN_OBJECT,
  resolveOptions,
  timeZoneSchema,
  whenFieldsParsed,
} from '@app/common';
import { z } from 'zod';
import { AuditConfigurationError } from './errors/audit.errors';

/** Options of `AuditModule.forRoot` / `forRootAsync`. Every field is optional. */
export interface AuditModuleOptions {
  /**
   * Fail closed: an operation whose audit row cannot be written fails. `record()` always throws when
   * its row cannot be written (inside the caller's transaction the whole operation rolls back);
   * for buffered reads, after a failed flush `recordRead()` rejects with `AuditUnavailableError`
   * until a flush succeeds again. With `false`, a failed flush is only logged and counted and reads
   * go on while the buffer has room (buffered reads are still never dropped).
   * @default true
   */
  failClosed?: boolean;
  /** Batching of read events (`recordRead`). */
  readBuffer?: {
    /** Events held in memory at most; when full, `recordRead()` waits for space (back-pressure). @default 1000 */
    maxSize?: number;
    /** The buffer is flushed at least this often (ms). @default 1000 */
    flushIntervalMs?: number;
    /** Rows written per flush transaction; reaching it triggers a flush at once. At most 1000 and ≤ maxSize. @default 200 */
    batchSize?: number;
  };
  /**
   * PostgreSQL: buffered reads are written with a named statement, parsed and planned once per pooled
   * connection (about a quarter less of the database's CPU per batch). Set `false` when the host reaches
   * PostgreSQL through a pooler that cannot keep named statements — PgBouncer in transaction mode before
   * 1.21 or without `max_prepared_statements`. Left on there, the process switches to the simple query
   * at the first statement the pooler loses (that batch goes the locked way), with one warning.
   * @default true
   */
  preparedStatements?: boolean;
  /**
   * SQLite file database in WAL mode: buffered reads are written by a worker thread on a connection of
   * its own, so their INSERT, COMMIT and fsync leave the event loop (with the connection's own
   * `synchronous` level: as durable as before). The first batch of each chain, and any batch after another
   * process appended to it, still goes on the main connection. No effect on PostgreSQL or `:memory:`.
   * @default true
   */
  sqliteWriteWorker?: boolean;
  /** Pruning of old audit rows (needs `ScheduleModule.forRoot()` in the host when enabled). */
  retention?: {
    /** Registers the `audit-retention` cron job. @default true */
    enabled?: boolean;
    /** Rows older than this many days are pruned. @default 90 */
    days?: number;
    /** When the job runs (cron syntax, seconds optional). @default '0 3 * * *' */
    cron?: string;
    /** IANA time zone for `cron`. @default 'UTC' */
    timeZone?: string;
    /**
     * PostgreSQL: the bound on each statement of a run, which the host's statement timeout and query deadline do
     * not cover (a first run over a large log deletes millions of rows in one statement). PostgreSQL cancels a
     * statement past it, and one unanswered this long plus the connection's query deadline (a stalled server or
     * path) closes its connection: the run fails with `AuditRetentionTimeoutError`, that chain keeps its rows and
     * the next run carries on. 0: no bound (a stall then holds the run until TCP keepalive ends it). 0 or
     * 1000..86400000. @default 1800000 (30 minutes)
     */
    statementTimeoutMs?: number;
  };
  /**
   * Anchoring of chain heads outside the database (needs an `AuditAnchorStore` provider and
   * `ScheduleModule.forRoot()` in the host when enabled): the `audit-anchor` cron job copies each
   * changed head to the store, and `verify()` checks every chain against its latest anchor.
   */
  anchor?: {
    /** Registers the `audit-anchor` cron job. @default false */
    enabled?: boolean;
    /** When the job runs (cron syntax, seconds optional). @default '*\/5 * * * *' (every 5 minutes) */
    cron?: string;
    /** IANA time zone for `cron`. @default 'UTC' */
    timeZone?: string;
  };
  /**
   * Detection of suspicious patterns. Counted in this process's memory (per process), unless the host
   * provides a `SuspiciousActivityCounters` globally (e.g. Redis): then thresholds count across
   * replicas and each alert is raised once per window in the cluster.
   */
  suspicious?: {
    /** @default true */
    enabled?: boolean;
    /** Failures/denials for one actor, or for one resource, within `windowMs` that raise an alert. @default 5 */
    failureThreshold?: number;
    /** @default 600000 (10 minutes) */
    windowMs?: number;
    /** One actor reading MORE than this many distinct resources within the window raises an alert. @default 100 */
    distinctReadsThreshold?: number;
    /** @default 600000 (10 minutes) */
    distinctReadsWindowMs?: number;
  };
  /**
   * Time source of audit timestamps, retention cutoffs and suspicious-activity windows.
   * @default the host's global `Clock` provider if any, else the system clock
   */
  clock?: Clock;
}

/** Options after defaults, as the services use them. */
export interface ResolvedAuditOptions {
  failClosed: boolean;
  readBuffer: { maxSize: number; flushIntervalMs: number; batchSize: number };
  preparedStatements: boolean;
  sqliteWriteWorker: boolean;
  retention: { enabled: boolean; days: number; cron: string; timeZone: string; statementTimeoutMs: number };
  anchor: { enabled: boolean; cron: string; timeZone: string };
  suspicious: {
    enabled: boolean;
    failureThreshold: number;
    windowMs: number;
    distinctReadsThreshold: number;
    distinctReadsWindowMs: number;
  };
  clock?: Clock;
}

const int = (min: number, max: number) => integerInRange(min, max);
const ms = (min: number, max: number) => integerInRange(min, max, { unit: 'of milliseconds' });
/** Generous: a first run deleting tens of millions of rows in one statement fits; a stalled one still ends. */
const DEFAULT_RETENTION_STATEMENT_TIMEOUT_MS = 1_800_000;
const STATEMENT_TIMEOUT_RANGE = 'must be 0 (no bound) or an integer of milliseconds in 1000..86400000';
const cron = (byDefault: string) => cronExpressionSchema().default(byDefault);

// Every field says what it wants, as the other libs' options do (never zod's "Invalid input: expected …").
const schema = z
  .object(
    {
      failClosed: booleanOption().default(true),
      readBuffer: z
        .object(
          {
            maxSize: int(1, 1_000_000).default(1000),
            flushIntervalMs: ms(10, 3_600_000).default(1000),
            batchSize: int(1, 1000).default(200),
          },
          MUST_BE_AN_OBJECT,
        )
        .strict()
        .default({ maxSize: 1000, flushIntervalMs: 1000, batchSize: 200 }),
      preparedStatements: booleanOption().default(true),
      sqliteWriteWorker: booleanOption().default(true),
      retention: z
        .object(
          {
            enabled: booleanOption().default(true),
            days: int(1, 36_500).default(90),
            cron: cron('0 3 * * *'),
            timeZone: timeZoneSchema().default('UTC'),
            statementTimeoutMs: z
              .number({ error: STATEMENT_TIMEOUT_RANGE })
              .int(STATEMENT_TIMEOUT_RANGE)
              .refine((t) => t === 0 || (t >= 1000 && t <= 86_400_000), STATEMENT_TIMEOUT_RANGE)
              .default(DEFAULT_RETENTION_STATEMENT_TIMEOUT_MS),
          },
          MUST_BE_AN_OBJECT,
        )
        .strict()
        .default({ enabled: true, days: 90, cron: '0 3 * * *', timeZone: 'UTC', statementTimeoutMs: DEFAULT_RETENTION_STATEMENT_TIMEOUT_MS }),
      anchor: z
        .object(
          {
            enabled: booleanOption().default(false),
            cron: cron('*/5 * * * *'),
            timeZone: timeZoneSchema().default('UTC'),
          },
          MUST_BE_AN_OBJECT,
        )
        .strict()
        .default({ enabled: false, cron: '*/5 * * * *', timeZone: 'UTC' }),
      suspicious: z
        .object(
          {
            enabled: booleanOption().default(true),
            failureThreshold: int(1, 1_000_000).default(5),
            windowMs: ms(1000, 7 * 86_400_000).default(600_000),
            distinctReadsThreshold: int(1, 1_000_000).default(100),
            distinctReadsWindowMs: ms(1000, 7 * 86_400_000).default(600_000),
          },
          MUST_BE_AN_OBJECT,
        )
        .strict()
        .default({
          enabled: true,
          failureThreshold: 5,
          windowMs: 600_000,
          distinctReadsThreshold: 100,
          distinctReadsWindowMs: 600_000,
        }),
      clock: clockOptionSchema().optional(),
    },
    MUST_BE_AN_OBJECT,
  )
  .strict()
  .superRefine((o, ctx) => {
    if (o.readBuffer.batchSize > o.readBuffer.maxSize) {
      ctx.addIssue({
        code: 'custom',
        path: ['readBuffer', 'batchSize'],
        message: `must be ≤ readBuffer.maxSize (${o.readBuffer.maxSize})`,
      });
    }
  }, whenFieldsParsed('readBuffer.batchSize', 'readBuffer.maxSize'));

/** Merges defaults and validates, once. Throws `AuditConfigurationError` naming every bad field. */
export function resolveAuditOptions(options: AuditModuleOptions | undefined): ResolvedAuditOptions {
  return resolveOptions(
    schema,
    options,
    (problems) => new AuditConfigurationError(`Invalid AuditModule options:\n  - ${describeProblems(problems).join('\n  - ')}`),
  );
}
