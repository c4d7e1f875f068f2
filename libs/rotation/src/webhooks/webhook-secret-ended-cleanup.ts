import { Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { OutboxDeferredError, OutboxHandlerRegistrations, OutboxHandlerRegistry, type OperationContext, type OutboxEvent } from '@app/common';
import { credentialChangeEventNames, credentialChangeOf, CredentialEvents, CredentialStatus, CredentialType } from '@app/credentials';
import { WebhookRotationInProgressError } from './webhook-secret.errors';
import { WebhookSecretRotator } from './webhook-secret-rotator';

/** The actor of the discards (audited), as for the rotation lib's other clean-ups. */
const WEBHOOK_ENDED_CLEANUP_ACTOR = 'system:rotation';

/**
 * How long the handler waits for the credential's rotation lock: a stage or discard holds it well under a second, but
 * an automatic rotation holds it through its push to the provider (unbounded), and the outbox delivers one event at a
 * time — a longer wait would hold every event behind this one (up to the outbox's handlerTimeoutMs). Under the host's
 * smallest OUTBOX_HANDLER_TIMEOUT_MS (1 s), so that a lock still held is a deferral, not the outbox's timeout.
 */
const CLEANUP_LOCK_WAIT_MS = 500;

/**
 * Discards the staged successor of a webhook secret whose life ended — revoked or deleted — outside RevocationService.
 * A webhook secret revoked by a bare status change — `CredentialsService.updateMetadata` to `revoked`, or
 * `CredentialsService.revoke` — loses its staged successor as a RevocationService revoke does (there in the revoke's
 * transaction); a deleted one (`delete`, `deleteMany`, `deleteByConnection`, the host's DELETE routes) loses it too
 * (`DELETED`). Driven by the change's outbox event (`credential.metadata_updated`, `credential.deleted`), committed
 * with it: after the commit, on whichever replica dispatches, again after a crash or a failure (the event comes back),
 * and a no-op once done. A revoke's event (`status: revoked`) discards what was staged before it even when the secret was
 * un-revoked before the event came (a bare `unrevoke`; RevocationService's un-revoke discards it in its own
 * transaction), and leaves one staged after it — told apart by the event's `rowVersion`, not by its time. With `emitEvents: false` the events come as `credentials.change.…`
 * (`credentialChangeEventNames`), handled the same. The rotation job discards what is left when it comes first. A
 * lock held past CLEANUP_LOCK_WAIT_MS defers the event (redelivered after the outbox's backoff) rather than holding the
 * outbox.
 */
@Injectable()
export class WebhookSecretEndedCleanup implements OnModuleInit, OnModuleDestroy {
  private readonly outboxRegistrations = new OutboxHandlerRegistrations();

  constructor(
    private readonly handlers: OutboxHandlerRegistry,
    private readonly rotator: WebhookSecretRotator,
  ) {}

  onModuleInit(): void {
    // Each change in either form: `emitEvents: false` keeps its event from the app, not from this.
    const names = credentialChangeEventNames(CredentialEvents.METADATA_UPDATED, CredentialEvents.DELETED);
    this.outboxRegistrations.register(this.handlers, names, (event) => this.handle(event));
  }

  onModuleDestroy(): void {
    this.outboxRegistrations.unregisterAll();
  }

  async handle(event: OutboxEvent): Promise<void> {
    const { credentialId, tenantId, type, correlationId, status, occurredAt, rowVersion } = event.payload;
    // Only webhook secrets stage successors: no read, no lock for any other credential's change.
    if (type !== CredentialType.WEBHOOK_SECRET || typeof credentialId !== 'string' || typeof tenantId !== 'string') return;
    const ctx: OperationContext = { tenantId, actor: { id: WEBHOOK_ENDED_CLEANUP_ACTOR }, ...(typeof correlationId === 'string' ? { correlationId } : {}) };
    // A revoke's event: what was staged by then goes even if the secret was un-revoked before this delivery.
    const revoke = credentialChangeOf(event.name) === CredentialEvents.METADATA_UPDATED && status === CredentialStatus.REVOKED;
    const mark = revoke
      ? { at: new Date(typeof occurredAt === 'string' ? occurredAt : NaN), ...(typeof rowVersion === 'number' ? { rowVersion } : {}) } // undated: all staged
      : undefined;
    try {
      await this.rotator.discardIfEnded(ctx, credentialId, CLEANUP_LOCK_WAIT_MS, mark);
    } catch (e) {
      // The lock is still held: the outbox redelivers the event after its backoff, quietly (an expected wait, not a failure).
      throw e instanceof WebhookRotationInProgressError ? new OutboxDeferredError(e.message, { cause: e }) : e;
    }
  }
}

