import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { OutboxHandlerRegistrations, OutboxHandlerRegistry, type OperationContext, type OutboxEvent } from '@app/common';
import { credentialChangeEventNames, CredentialEvents, CredentialNotFoundError, CredentialsService, CredentialStatus } from '@app/credentials';
import { RotationEvents } from '../rotation.events';
import { PENDING_ROTATION_CONNECTION_PREFIX, PendingRotationValues } from './pending-rotation-values';

/** The actor of the deletes (audited). */
export const PENDING_ROTATION_CLEANUP_ACTOR = 'system:rotation';

/**
 * Secret material does not outlive its credential: when a credential is deleted or revoked, its pending rotation value
 * (see PendingRotationValues) is deleted too. Driven by the outbox events of those changes (`credential.deleted`,
 * `credential.revoked`, and `credential.metadata_updated`, which a revoke through PATCH status is; the credentials lib's
 * in their `credentials.change.…` form under its `emitEvents: false`), so it runs on
 * whichever replica dispatches, after the commit, and again after a crash: a failed delete throws and the event comes
 * back. It looks at the credential's state, not at the event: an event delivered twice or late does nothing wrong.
 */
@Injectable()
export class PendingRotationCleanup implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(PendingRotationCleanup.name);
  private readonly outboxRegistrations = new OutboxHandlerRegistrations();

  constructor(
    private readonly handlers: OutboxHandlerRegistry,
    private readonly credentials: CredentialsService,
    private readonly pending: PendingRotationValues,
  ) {}

  onModuleInit(): void {
    // Each credential change in either form: `emitEvents: false` keeps its event from the app, not from this.
    const names = [...credentialChangeEventNames(CredentialEvents.DELETED, CredentialEvents.METADATA_UPDATED), RotationEvents.REVOKED];
    this.outboxRegistrations.register(this.handlers, names, (event: OutboxEvent) => this.handle(event));
  }

  onModuleDestroy(): void {
    this.outboxRegistrations.unregisterAll();
  }

  /** Deletes the pending rotation value of the event's credential when that credential is deleted or revoked. */
  async handle(event: OutboxEvent): Promise<void> {
    const { credentialId, tenantId, integrationId, connectionId, correlationId } = event.payload;
    if (typeof credentialId !== 'string' || typeof tenantId !== 'string' || typeof integrationId !== 'string') return;
    if (typeof connectionId === 'string' && connectionId.startsWith(PENDING_ROTATION_CONNECTION_PREFIX)) return; // a pending value's own event
    const ctx: OperationContext = { tenantId, actor: { id: PENDING_ROTATION_CLEANUP_ACTOR }, ...(typeof correlationId === 'string' ? { correlationId } : {}) };
    const pending = await this.pending.find(ctx, { id: credentialId, integrationId });
    if (!pending) return;
    const state = await this.stateOf(ctx, credentialId);
    if (state === 'live') return;
    await this.pending.discard(ctx, pending);
    this.logger.log(`deleted the pending rotation value ${pending.id} of credential ${credentialId} (tenant ${tenantId}): the credential is ${state}`);
  }

  private async stateOf(ctx: OperationContext, credentialId: string): Promise<'deleted' | 'revoked' | 'live'> {
    try {
      const meta = await this.credentials.getMetadata(ctx, credentialId);
      return meta.status === CredentialStatus.REVOKED ? 'revoked' : 'live';
    } catch (e) {
      if (e instanceof CredentialNotFoundError) return 'deleted';
      throw e;
    }
  }
}
