import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit, Optional } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { Clock, describeError, OperationContext, Outbox, OutboxEvent, OutboxEventInput, OutboxHandlerRegistry, OutboxPayload } from '@app/common';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import type { ResolvedCredentialsOptions } from '../credentials.options';
import type { CredentialEntity } from '../entities/credential.entity';
import { CredentialsPersistence } from '../persistence/credentials-persistence';
import { CREDENTIAL_CHANGE_INTERNAL_PREFIX, CredentialEvent, CredentialEventName, CredentialEvents, type CredentialChangeEventName } from './credential-events';

export type { CredentialChangeEventName } from './credential-events';

const CHANGE_EVENTS: CredentialChangeEventName[] = [
  CredentialEvents.STORED,
  CredentialEvents.ROTATED,
  CredentialEvents.ROLLED_BACK,
  CredentialEvents.METADATA_UPDATED,
  CredentialEvents.DELETED,
];

/**
 * Publishes `credential.*` events. `emitEvents: false` keeps them from the app: `credential.read` is not emitted, and a
 * change's outbox event (a store's none: see `written`) is written as `credentials.change.<name>` (CREDENTIAL_CHANGE_INTERNAL_PREFIX), which only the
 * libs' own clean-ups register for (`credentialChangeEventNames`) — the cache's evictions on every replica, the
 * rotation lib's discards —, so turning events off turns none of those off.
 *
 * - State changes go into the outbox, in the transaction of the change: a crash between commit and
 *   delivery no longer loses them, and every replica's listeners can see them. The dispatcher hands
 *   the bus a `CredentialEvent` (the registry mapping below), so listeners get what they always got.
 * - `credential.read` stays an in-process emit: it changes nothing, and an outbox row per read would
 *   be a database write on the hot, cached read path.
 */
/** The outbox events of the lib's own work: `credentials.change.*`, `credentials.vault-values.*`. */
const LIB_OWN_EVENTS = 'credentials.*';

@Injectable()
export class CredentialEventPublisher implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(CredentialEventPublisher.name);
  private readonly outbox: Outbox;
  private readonly handlers: OutboxHandlerRegistry;
  private unmap: Array<() => void> = [];

  constructor(
    persistence: CredentialsPersistence,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) private readonly options: ResolvedCredentialsOptions,
    @Optional() private readonly events?: EventEmitter2,
  ) {
    this.outbox = persistence.outbox;
    this.handlers = persistence.handlers;
  }

  onModuleInit(): void {
    // Also on replicas that never write: they may dispatch another replica's events.
    this.unmap = CHANGE_EVENTS.map((name) => this.handlers.mapBusPayload(name, toCredentialEvent));
    // The lib's own work under `credentials.` (a change under emitEvents: false, a delete's and a revoke's vault side):
    // for its handlers, not for an app's onAny or wildcard listener (the app's events are `credential.*`).
    this.unmap.push(this.handlers.keepOffBus(LIB_OWN_EVENTS));
  }

  onModuleDestroy(): void {
    for (const unmap of this.unmap) unmap();
    this.unmap = [];
  }

  /** Adds the event of a change to the outbox; call it inside the change's `runner.run`. */
  async changed(name: CredentialChangeEventName, ctx: OperationContext, row: CredentialEntity, sourceVersion?: number): Promise<void> {
    if (!this.written(name)) return;
    await this.outbox.add(this.outboxEvent(name, ctx, row, sourceVersion));
  }

  /** `changed` for many rows of one transaction: one multi-row outbox insert. */
  async changedMany(name: CredentialChangeEventName, changes: { ctx: OperationContext; row: CredentialEntity }[]): Promise<void> {
    if (!this.written(name) || !changes.length) return;
    await this.outbox.addMany(changes.map(({ ctx, row }) => this.outboxEvent(name, ctx, row)));
  }

  /**
   * Whether a change's event is written: always for the app; under `emitEvents: false` only where a lib's work rides on
   * it — not a store's (a fresh id: no cache entry to evict, nothing pending to discard), which a bulk load would
   * otherwise pay one outbox row per credential for.
   */
  private written(name: CredentialChangeEventName): boolean {
    return this.options.emitEvents || name !== CredentialEvents.STORED;
  }

  private outboxEvent(name: CredentialChangeEventName, ctx: OperationContext, row: CredentialEntity, sourceVersion?: number): OutboxEventInput {
    const { name: _name, occurredAt, ...rest } = this.event(name, ctx, row, sourceVersion);
    const payload: OutboxPayload = { ...rest, occurredAt: occurredAt.toISOString() };
    // JSON has no undefined: leave absent members out rather than fail validation.
    for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
    return { name: this.options.emitEvents ? name : `${CREDENTIAL_CHANGE_INTERNAL_PREFIX}${name}`, tenantId: row.tenantId, payload };
  }

  /** Emits `credential.read` in this process, now (never durable: see the class comment). */
  read(ctx: OperationContext, row: CredentialEntity, version?: number): void {
    if (!this.options.emitEvents || !this.events) return;
    const name = CredentialEvents.READ;
    try {
      this.events.emit(name, this.event(name, ctx, row, undefined, version));
    } catch (e) {
      // The listener is the host's code: its error's text may quote what it was doing (a vault call's, a value).
      this.logger.warn(`a listener of ${name} failed for credential ${row.id}: ${describeError(e)}`);
    }
  }

  private event(name: CredentialEventName, ctx: OperationContext, row: CredentialEntity, sourceVersion?: number, version?: number): CredentialEvent {
    return {
      name,
      credentialId: row.id,
      tenantId: row.tenantId,
      integrationId: row.integrationId,
      connectionId: row.connectionId,
      type: row.type,
      version: version ?? row.currentVersion,
      rowVersion: row.rowVersion,
      status: row.status,
      ...(sourceVersion !== undefined ? { sourceVersion } : {}),
      actorId: ctx.actor.id,
      correlationId: ctx.correlationId,
      occurredAt: this.clock.now(),
    };
  }
}

/** What the bus receives for a dispatched change: the `CredentialEvent` it was written from, plus its outbox id. */
export function toCredentialEvent(event: OutboxEvent): CredentialEvent {
  const payload = event.payload as unknown as Omit<CredentialEvent, 'name' | 'occurredAt'> & { occurredAt: string };
  return { ...payload, name: event.name as CredentialEventName, occurredAt: new Date(payload.occurredAt), eventId: event.id };
}
