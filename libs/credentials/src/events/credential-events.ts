import type { CredentialStatus, CredentialType } from '../credential-type';

/**
 * Event names on the EventEmitter2 bus (register EventEmitterModule.forRoot() in the host). Every
 * state change (stored, rotated, rolled_back, metadata_updated, deleted) is written to the outbox in
 * the transaction of the change and delivered by the `OutboxDispatcher` — after commit, at least once,
 * on whichever replica dispatches. `credential.read` is emitted in process only.
 */
export const CredentialEvents = {
  STORED: 'credential.stored',
  READ: 'credential.read',
  ROTATED: 'credential.rotated',
  ROLLED_BACK: 'credential.rolled_back',
  METADATA_UPDATED: 'credential.metadata_updated',
  DELETED: 'credential.deleted',
} as const;
export type CredentialEventName = (typeof CredentialEvents)[keyof typeof CredentialEvents];

/** The events that announce a committed state change: durable, through the outbox. */
export type CredentialChangeEventName = Exclude<CredentialEventName, typeof CredentialEvents.READ>;

/**
 * With `emitEvents: false` a change's outbox event is written under this prefix (`credentials.change.credential.deleted`)
 * rather than not at all: the libs' own work that rides on it — every replica's cache eviction, the rotation lib's
 * discards of a deleted or revoked credential's pending values — still runs, and no listener of `credential.*` (the
 * app's bus, the rotation lib's notifications) hears it.
 */
export const CREDENTIAL_CHANGE_INTERNAL_PREFIX = 'credentials.change.';

/** The outbox names a clean-up of these changes registers for: each event, and its `emitEvents: false` form. */
export function credentialChangeEventNames(...names: CredentialChangeEventName[]): string[] {
  return names.flatMap((name) => [name, `${CREDENTIAL_CHANGE_INTERNAL_PREFIX}${name}`]);
}

/** The change an outbox event of either form announces (`credential.deleted` for both), else the name itself. */
export function credentialChangeOf(outboxName: string): string {
  return outboxName.startsWith(CREDENTIAL_CHANGE_INTERNAL_PREFIX) ? outboxName.slice(CREDENTIAL_CHANGE_INTERNAL_PREFIX.length) : outboxName;
}

/** Payload of every `credential.*` event. Never a value. */
export interface CredentialEvent {
  name: CredentialEventName;
  credentialId: string;
  tenantId: string;
  integrationId: string;
  connectionId: string;
  type: CredentialType;
  /** Current version after the operation (the version read, for `credential.read`). */
  version: number;
  rowVersion: number;
  /**
   * The credential's status after the change (at the read, for `credential.read`): a `metadata_updated` to `revoked`
   * is a revoke, one from it to another status an un-revoke. Absent from events written before it was added.
   */
  status?: CredentialStatus;
  /** Rollback: the version whose value became current again. */
  sourceVersion?: number;
  actorId: string;
  correlationId?: string;
  occurredAt: Date;
  /**
   * State changes only: the outbox event id. Delivery is at least once (a crash after a listener ran
   * delivers again), so a listener with an effect de-duplicates on it.
   */
  eventId?: string;
}
