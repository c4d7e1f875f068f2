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
  /** Failed deliveries before this one (0 on the first delivery). */
  readonly attempts: number;
}

/**
 * Receives outbox events at least once, in no guaranteed order, outside any transaction. Throwing
 * makes the dispatcher retry the event later — for EVERY handler of the event, so each must be
 * idempotent on `event.id`.
 */
export type OutboxHandler = (event: OutboxEvent) => unknown;
