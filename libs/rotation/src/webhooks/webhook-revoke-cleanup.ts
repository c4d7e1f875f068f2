import { Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { OutboxHandlerRegistry, type OperationContext, type OutboxEvent } from '@app/common';
import { CredentialEvents, CredentialType } from '@app/credentials';
import { WebhookSecretRotator } from './webhook-secret-rotator';

/** The actor of the discards (audited), as for the rotation lib's other clean-ups. */
const WEBHOOK_REVOKE_CLEANUP_ACTOR = 'system:rotation';

/**
 * A webhook secret revoked by a bare status change — `CredentialsService.updateMetadata` to `revoked`, or
 * `CredentialsService.revoke` — loses its staged successor as a RevocationService revoke does (there in the revoke's
 * transaction); a deleted one (`delete`, `deleteMany`, `deleteByConnection`, the host's DELETE routes) loses it too
 * (`DELETED`). Driven by the change's outbox event (`credential.metadata_updated`, `credential.deleted`), committed
 * with it: after the commit, on whichever replica dispatches, again after a crash or a failure (the event comes back),
 * and a no-op once done. The rotation job discards what is left when it comes first (or without `emitEvents`).
 */
@Injectable()
export class WebhookRevokeCleanup implements OnModuleInit, OnModuleDestroy {
  private readonly unregister: Array<() => void> = [];

  constructor(
    private readonly handlers: OutboxHandlerRegistry,
    private readonly rotator: WebhookSecretRotator,
  ) {}

  onModuleInit(): void {
    for (const name of [CredentialEvents.METADATA_UPDATED, CredentialEvents.DELETED]) this.unregister.push(this.handlers.register(name, (event) => this.handle(event)));
  }

  onModuleDestroy(): void {
    for (const off of this.unregister.splice(0)) off();
  }

  async handle(event: OutboxEvent): Promise<void> {
    const { credentialId, tenantId, type, correlationId } = event.payload;
    // Only webhook secrets stage successors: no read, no lock for any other credential's change.
    if (type !== CredentialType.WEBHOOK_SECRET || typeof credentialId !== 'string' || typeof tenantId !== 'string') return;
    const ctx: OperationContext = { tenantId, actor: { id: WEBHOOK_REVOKE_CLEANUP_ACTOR }, ...(typeof correlationId === 'string' ? { correlationId } : {}) };
    await this.rotator.discardIfEnded(ctx, credentialId);
  }
}
