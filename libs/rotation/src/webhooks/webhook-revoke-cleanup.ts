import { Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { OutboxHandlerRegistry, type OperationContext, type OutboxEvent } from '@app/common';
import { CredentialEvents, CredentialType } from '@app/credentials';
import { WebhookSecretRotator } from './webhook-secret-rotator';

/** The actor of the discards (audited), as for the rotation lib's other clean-ups. */
const WEBHOOK_REVOKE_CLEANUP_ACTOR = 'system:rotation';

/**
 * A webhook secret revoked by a bare status change — `CredentialsService.updateMetadata` to `revoked`, or
 * `CredentialsService.revoke` — loses its staged successor as a RevocationService revoke does (there in the revoke's
 * transaction). Driven by the change's `credential.metadata_updated` outbox event, committed with it: after the commit,
 * on whichever replica dispatches, again after a crash or a failure (the event comes back), and a no-op once done.
 */
@Injectable()
export class WebhookRevokeCleanup implements OnModuleInit, OnModuleDestroy {
  private unregister?: () => void;

  constructor(
    private readonly handlers: OutboxHandlerRegistry,
    private readonly rotator: WebhookSecretRotator,
  ) {}

  onModuleInit(): void {
    this.unregister = this.handlers.register(CredentialEvents.METADATA_UPDATED, (event) => this.handle(event));
  }

  onModuleDestroy(): void {
    this.unregister?.();
  }

  async handle(event: OutboxEvent): Promise<void> {
    const { credentialId, tenantId, type, correlationId } = event.payload;
    // Only webhook secrets stage successors: no read, no lock for any other credential's change.
    if (type !== CredentialType.WEBHOOK_SECRET || typeof credentialId !== 'string' || typeof tenantId !== 'string') return;
    const ctx: OperationContext = { tenantId, actor: { id: WEBHOOK_REVOKE_CLEANUP_ACTOR }, ...(typeof correlationId === 'string' ? { correlationId } : {}) };
    await this.rotator.discardIfRevoked(ctx, credentialId);
  }
}
