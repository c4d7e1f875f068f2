/** A JSON value as stored in the outbox payload. */
export type OutboxJson = string | number | boolean | null | OutboxJson[] | { [key: string]: OutboxJson };

/**
 * What an event carries: ids and metadata (credential id, version, tenant, type, reason ...).
 * NEVER a credential value, a token, a key or anything derived from one: outbox rows are plain
 * database rows, retried, logged by id and read by every handler and replica.
 */
export type OutboxPayload = { [key: string]: OutboxJson };

/** What `Outbox.add` takes. */
export interface OutboxEventInput {
  /** Event name, e.g. `credential.rotated` (1–128 characters). Handlers register by name or prefix. */
  name: string;
  tenantId?: string | null;
  /** Ids and metadata only — see `OutboxPayload`. */
  payload: OutboxPayload;
}

/** An event as delivered to handlers and to the EventEmitter2 bus. */
export interface OutboxEvent {
  /** The idempotency key: delivery is at least once, so handlers de-duplicate on it. */
  readonly id: string;
  readonly name: string;
  readonly tenantId: string | null;
  readonly payload: OutboxPayload;
  readonly createdAt: Date;
  /** Failed (or deferred) deliveries before this one (0 on the first delivery). */
  readonly attempts: number;
}

/**
 * Receives outbox events at least once, in no guaranteed order, outside any transaction. Throwing
 * makes the dispatcher retry the event later — for EVERY handler of the event, so each must be
 * idempotent on `event.id`.
 */
export type OutboxHandler = (event: OutboxEvent) => unknown;

/**
 * What a handler throws when the event is not done yet by design rather than broken: a step it waits
 * out on its own schedule (a notification channel in its backoff, a send finishing in the background).
 * The dispatcher keeps the event (at least once holds) and redelivers it after `retryAfterMs` when
 * given — the handler knows when it can make progress, and an earlier redelivery would find nothing to
 * do — else after its usual backoff; it logs the deferral at debug, not as a warning (the handler
 * reports its own failures). A handler throws `OutboxDeferredError`; any error class may carry these fields too (a lib
 * error its callers also see), and `isOutboxDeferral` recognises it.
 */
export interface OutboxDeferral {
  readonly outboxDeferred: true;
  /** Come back no sooner than this (ms from now); absent: the dispatcher's backoff. */
  readonly retryAfterMs?: number;
}

export function isOutboxDeferral(e: unknown): e is OutboxDeferral {
  return typeof e === 'object' && e !== null && (e as { outboxDeferred?: unknown }).outboxDeferred === true;
}

/**
 * The `OutboxDeferral` a handler throws: `throw new OutboxDeferredError('the lock is still held', { cause: e })`.
 * `retryAfterMs` as in `OutboxDeferral`. The event row's `last_error` and the dispatcher's debug line name the class and
 * `code` — given, else the cause's (`OutboxDeferredError(WEBHOOK_ROTATION_IN_PROGRESS)`): why the event waits. Not a
 * `CredentialVaultError`: it never leaves the dispatcher, and no caller sees it.
 */
export class OutboxDeferredError extends Error implements OutboxDeferral {
  readonly outboxDeferred = true as const;
  readonly retryAfterMs?: number;
  /** What the event waits for: `options.code`, else the cause's `codeName` or `code`. */
  readonly code?: string | number;

  constructor(message: string, options: { retryAfterMs?: number; code?: string | number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OutboxDeferredError';
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    const code = options.code ?? codeOf(options.cause);
    if (code !== undefined) this.code = code;
  }
}

function codeOf(cause: unknown): string | number | undefined {
  if (typeof cause !== 'object' || cause === null) return undefined;
  const { codeName, code } = cause as { codeName?: unknown; code?: unknown };
  for (const c of [codeName, code]) if ((typeof c === 'string' && c !== '') || typeof c === 'number') return c;
  return undefined;
}
