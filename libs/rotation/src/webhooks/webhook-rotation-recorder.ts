import { Inject, Injectable, Logger } from '@nestjs/common';
import { auditErrorCode, AuditResult, AuditService } from '@app/audit';
import { Clock, describeError, Outbox, TransactionRunner, type OperationContext } from '@app/common';
import type { CredentialMetadata } from '@app/credentials';
import { WebhookSecretState, type WebhookSecretVersionEntity } from './persistence/webhook-secret-version.entity';
import { WebhookSecretVersionRepository } from './persistence/webhook-secret-version.repository';
import { WEBHOOK_SECRETS_CLOCK, WebhookAuditActions, WebhookSecretEvents } from './webhook-secrets.tokens';

/** The audit rows of a rotation's steps, and what a failed step leaves behind. */
@Injectable()
export class WebhookRotationRecorder {
  // The rotation's log lines keep one context.
  private readonly logger = new Logger('WebhookSecretRotator');

  constructor(
    private readonly rows: WebhookSecretVersionRepository,
    private readonly runner: TransactionRunner,
    private readonly outbox: Outbox,
    private readonly audit: AuditService,
    @Inject(WEBHOOK_SECRETS_CLOCK) private readonly clock: Clock,
  ) {}

  /** A failed step: attempts + error name/code on the pending row, an audit row and a rotation_failed event. */
  async failure(ctx: OperationContext, meta: CredentialMetadata, pending: WebhookSecretVersionEntity, step: 'push' | 'promote', e: unknown): Promise<void> {
    const error = describeError(e);
    const attempts = pending.attempts + 1;
    pending.attempts = attempts;
    // Best effort: the caller rethrows the original error, which this must not mask.
    await this.runner.run(async () => {
      await this.rows.transition(pending.id, WebhookSecretState.PENDING, { attempts, lastError: error, updatedAt: this.clock.now() });
      await this.record(ctx, WebhookAuditActions.PUSH_FAILED, meta.id, AuditResult.FAILURE, { rotationId: pending.id, step, attempts }, auditErrorCode(e));
      await this.outbox.add({
        name: WebhookSecretEvents.ROTATION_FAILED,
        tenantId: meta.tenantId,
        payload: { credentialId: meta.id, integrationId: meta.integrationId, connectionId: meta.connectionId, rotationId: pending.id, step, attempts, error },
      });
    }).catch((failure: unknown) => this.logger.warn(`Could not record the failed ${step} of webhook rotation ${pending.id}: ${describeError(failure)}`));
  }

  async record(ctx: OperationContext, action: string, resource: string, result: AuditResult, details: Record<string, unknown>, errorCode?: string): Promise<void> {
    await this.audit.record({ action, context: ctx, resource, result, details, ...(errorCode ? { errorCode: errorCode.slice(0, 64) } : {}) });
  }
}
