import { z } from 'zod';
import { describeProblems, resolveOptions } from '../options/resolve-options';
import { whenFieldsParsed } from '../options/option-schemas';
import { PersistenceConfigurationError } from './persistence.errors';
import { DEFAULT_LOCK_SESSIONS } from '../lock/lock-sessions';
import { DEFAULT_LOCK_HEARTBEAT } from '../lock/lock-heartbeat';

/** Options of `PersistenceModule.forRoot`. Every field is optional. */
export interface PersistenceModuleOptions {
  outbox?: {
    /**
     * Whether this process dispatches outbox events. `false` for processes that only write (a CLI,
     * a migration job): their events are delivered by a replica that dispatches.
     * @default true
     */
    dispatch?: boolean;
    /** The dispatcher also looks for due events this often (retries, other replicas' events); 0 = only after local commits. @default 5000 */
    pollIntervalMs?: number;
    /** Rows claimed per batch, oldest first. @default 100 */
    batchSize?: number;
    /** Retry delay after a failed delivery: `baseMs · 2^(attempts-1)`, capped at `maxMs`, half of it jittered. */
    backoff?: { baseMs?: number; maxMs?: number };
    /** Delivered rows older than this are deleted. @default 604800000 (7 days) */
    retentionMs?: number;
    /** Pruning runs at most this often. @default 600000 (10 minutes) */
    pruneEveryMs?: number;
    /** The DistributedLock key that lets one replica dispatch at a time. @default 'cv-outbox-dispatcher[:<schema>]' */
    lockKey?: string;
    /** After a nudge found the lock held by another replica, try again this much later. @default 1000 */
    lockRetryMs?: number;
    /** Largest accepted payload (serialised JSON, bytes). @default 16384 */
    maxPayloadBytes?: number;
    /**
     * How long one handler (or the bus) may take with one event. One that has not settled by then
     * counts as a failure (`Error(ETIMEDOUT)`, retried with the backoff) and the dispatcher moves on:
     * events are delivered one at a time, so a hanging handler held every event behind it, the
     * dispatcher lock and shutdown, indefinitely. It is not cancelled. @default 10000
     */
    handlerTimeoutMs?: number;
  };
  locks?: {
    /**
     * PostgreSQL: how many advisory locks (jobs, the outbox dispatcher, OAuth refreshes, rotations, revokes)
     * this process may hold at once. Each held lock pins a session of a pool of its own beside the
     * DataSource's, so this adds to the connections a replica may open. One more holder waits for a free
     * session (up to its lock timeout, or the DataSource's `connectionTimeoutMillis`), then fails with
     * LOCK_SESSIONS_EXHAUSTED (9002, HTTP 503). Ignored on SQLite. 1..100.
     * @default 8
     */
    maxSessions?: number;
    /**
     * PostgreSQL: while a lock is held, its session is asked `SELECT 1` this often. A session whose path stalls (a
     * hung server, a proxy or network path that still ACKs) says nothing until TCP keepalive gives up, while
     * another replica may already have the lock: a heartbeat unanswered within `heartbeatTimeoutMs`, or failing,
     * aborts the holder's `held` signal with LOCK_LOST (9003) and the session is discarded once `fn` settles.
     * 100..600000. @default 10000
     */
    heartbeatMs?: number;
    /** How long a heartbeat may take to answer; below `heartbeatMs`. 50..599999. @default 5000 */
    heartbeatTimeoutMs?: number;
  };
}

export interface ResolvedOutboxOptions {
  dispatch: boolean;
  pollIntervalMs: number;
  batchSize: number;
  backoff: { baseMs: number; maxMs: number };
  retentionMs: number;
  pruneEveryMs: number;
  lockKey?: string;
  lockRetryMs: number;
  maxPayloadBytes: number;
  handlerTimeoutMs: number;
}

export interface ResolvedPersistenceOptions {
  outbox: ResolvedOutboxOptions;
  locks: { maxSessions: number; heartbeatMs: number; heartbeatTimeoutMs: number };
}

const DAY_MS = 86_400_000;
const int = (min: number, max: number) => z.number().int().min(min).max(max);

const outboxSchema = z
  .object({
    dispatch: z.boolean().default(true),
    pollIntervalMs: z.union([z.literal(0), int(10, DAY_MS)]).default(5000),
    batchSize: int(1, 1000).default(100),
    backoff: z
      .object({ baseMs: int(1, DAY_MS).default(1000), maxMs: int(1, 7 * DAY_MS).default(300_000) })
      .strict()
      .prefault({}),
    retentionMs: int(0, 3650 * DAY_MS).default(7 * DAY_MS),
    pruneEveryMs: int(1000, 30 * DAY_MS).default(600_000),
    lockKey: z.string().min(1).max(200).optional(),
    lockRetryMs: int(10, 3_600_000).default(1000),
    maxPayloadBytes: int(256, 1_048_576).default(16_384),
    handlerTimeoutMs: int(10, 3_600_000).default(10_000),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.backoff.baseMs > o.backoff.maxMs) {
      ctx.addIssue({ code: 'custom', path: ['backoff', 'baseMs'], message: `must be ≤ backoff.maxMs (${o.backoff.maxMs})` });
    }
  }, whenFieldsParsed('backoff.baseMs', 'backoff.maxMs'));

const locksSchema = z
  .object({
    maxSessions: int(1, 100).default(DEFAULT_LOCK_SESSIONS),
    heartbeatMs: int(100, 600_000).default(DEFAULT_LOCK_HEARTBEAT.intervalMs),
    heartbeatTimeoutMs: int(50, 599_999).default(DEFAULT_LOCK_HEARTBEAT.timeoutMs),
  })
  .strict()
  .superRefine((o, ctx) => {
    // A stall is then noticed within interval + deadline, and a heartbeat's answer is awaited before the next is due.
    if (o.heartbeatTimeoutMs >= o.heartbeatMs) {
      ctx.addIssue({ code: 'custom', path: ['heartbeatTimeoutMs'], message: `must be < heartbeatMs (${o.heartbeatMs})` });
    }
  }, whenFieldsParsed('heartbeatMs', 'heartbeatTimeoutMs'));

const schema = z.object({ outbox: outboxSchema.prefault({}), locks: locksSchema.prefault({}) }).strict();

/** Merges defaults and validates, once. Throws `PersistenceConfigurationError` listing every problem. */
export function resolvePersistenceOptions(options: PersistenceModuleOptions | undefined): ResolvedPersistenceOptions {
  return resolveOptions(schema, options, (problems) => new PersistenceConfigurationError(describeProblems(problems)), { alwaysGlobal: 'PersistenceModule' });
}

/**
 * Delay before the next delivery after `attempts` failures: exponential, capped, with "equal jitter"
 * (half fixed, half random) so replicas retrying together spread out but never retry at once.
 */
export function outboxBackoffMs(attempts: number, backoff: { baseMs: number; maxMs: number }, random: () => number = Math.random): number {
  const exp = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.max(0, Math.min(attempts - 1, 40)));
  return Math.max(1, Math.round(exp / 2 + (random() * exp) / 2));
}
