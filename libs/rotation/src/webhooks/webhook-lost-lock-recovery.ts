import { Injectable, Logger } from '@nestjs/common';
import { auditErrorCode, AuditResult } from '@app/audit';
import { describeError, Outbox, TransactionRunner, type OperationContext } from '@app/common';
import { CredentialErrorCode, CredentialsService, type CredentialMetadata } from '@app/credentials';
import { WebhookSecretState, type WebhookSecretVersionEntity } from './persistence/webhook-secret-version.entity';
import { WebhookSecretVersionRepository } from './persistence/webhook-secret-version.repository';
import { WebhookRotationInProgressError } from './webhook-secret.errors';
import type { WebhookRotationResult } from './webhook-secret-rotator';
import { WebhookSecretUpdaterRegistry } from './webhook-secret-updater';
import { WebhookRotationLock, type RotationAsk } from './webhook-rotation-lock';
import { WebhookRotationRecorder } from './webhook-rotation-recorder';
import { WebhookRotationSteps } from './webhook-rotation-steps';
import { WebhookAuditActions, WebhookSecretEvents } from './webhook-secrets.tokens';

/**
 * A rotation that outlived its lock session (a lost connection frees an advisory lock while its holder goes on):
 * what it answers when another process went on with the credential meanwhile, and the repair of a push that
 * landed after a later rotation.
 */
@Injectable()
export class WebhookLostLockRecovery {
  // The rotation's log lines keep one context.
  private readonly logger = new Logger('WebhookSecretRotator');

  constructor(
    private readonly credentials: CredentialsService,
    private readonly rows: WebhookSecretVersionRepository,
    private readonly updaters: WebhookSecretUpdaterRegistry,
    private readonly runner: TransactionRunner,
    private readonly outbox: Outbox,
    private readonly lock: WebhookRotationLock,
    private readonly steps: WebhookRotationSteps,
    private readonly recorder: WebhookRotationRecorder,
  ) {}

  /**
   * The answer of a rotation that another process went on with after this one lost its lock session (a lost
   * connection frees an advisory lock while its holder goes on): that promotion, else (discarded) IN_PROGRESS — a
   * refusal as the lock's own (failure, 3122, `details.version`), audited once here: nothing of it was written —
   * unless `audited` is false: a push that outlived its lock writes the repair's `push_superseded` row instead (one
   * row per request).
   */
  async movedOn(ctx: OperationContext, asked: RotationAsk, meta: CredentialMetadata, rotationId: string, audited = true): Promise<WebhookRotationResult> {
    const elsewhere = await this.steps.promotedElsewhere(meta, rotationId);
    if (elsewhere) return elsewhere;
    const refused = new WebhookRotationInProgressError(meta.id);
    throw audited ? await this.lock.refused(ctx, asked, meta, refused) : refused;
  }

  /**
   * A staging read's NOT_FOUND for a row no longer pending: its value went with its promotion (or discard) by another
   * process (see movedOn) — never a 404 naming the internal staging id, nor a row to abandon.
   */
  async goneElsewhere(e: unknown, credentialId: string, rotationId: string): Promise<boolean> {
    return (e as { code?: unknown }).code === CredentialErrorCode.NOT_FOUND && (await this.rowOf(credentialId, rotationId))?.state !== WebhookSecretState.PENDING;
  }

  private async rowOf(credentialId: string, rotationId: string): Promise<WebhookSecretVersionEntity | undefined> {
    return (await this.rows.byId(credentialId, rotationId)) ?? undefined;
  }

  /**
   * This rotation's row when, after its push, it is neither pending nor current: another process went on with the
   * credential after this one lost its lock session (a lost connection frees an advisory lock while its holder's
   * provider call goes on) — it completed this rotation and a later one, or discarded it. The value just pushed is
   * then not the current secret, and the provider, which keeps the last one installed, may now sign with it.
   */
  async supersededRow(credentialId: string, rotationId: string): Promise<WebhookSecretVersionEntity | null> {
    const row = await this.rowOf(credentialId, rotationId);
    return row && row.state !== WebhookSecretState.PENDING && row.state !== WebhookSecretState.CURRENT ? row : null;
  }

  /**
   * After a superseded push (see `supersededRow`), under the lock again: the current secret is pushed again — a retry
   * of the current rotation's own push, with its rotationId — unless a rotation is pending, whose own push (resumed by
   * the job) installs a newer one. Audited either way (`push_superseded`); a repair that failed also raises
   * `webhook_secret.rotation_failed` (step `repair`): the provider may sign with a secret that stops verifying when its
   * overlap ends. Best effort: never throws (the caller answers its rotation).
   */
  async repairStalePush(ctx: OperationContext, credentialId: string, stale: WebhookSecretVersionEntity): Promise<void> {
    const facts: Record<string, unknown> = { rotationId: stale.id, state: stale.state, repaired: false };
    let failure: unknown;
    try {
      await this.lock.lockedWaiting(credentialId, null, async () => {
        const meta = await this.lock.rotatable(ctx, credentialId);
        const active = await this.rows.active(meta.id);
        const pending = active.find((r) => r.state === WebhookSecretState.PENDING);
        const current = active.find((r) => r.state === WebhookSecretState.CURRENT);
        facts.currentRotationId = current?.id;
        if (pending) facts.pendingRotationId = pending.id;
        if (pending || !current || current.credentialVersion === null) return;
        // The current rotation's own version, not whatever the cache serves as current (a late invalidation notice).
        const value = (await this.credentials.getVersion(ctx, meta.id, current.credentialVersion)).value;
        await this.updaters.get(meta.integrationId).update({
          context: ctx,
          credentialId: meta.id,
          integrationId: meta.integrationId,
          connectionId: meta.connectionId,
          newSecret: value,
          rotationId: current.id,
          // What the current rotation's own push said: a promotion moves the version up by one.
          replacesVersion: current.credentialVersion - 1,
        });
        facts.repaired = true;
      });
    } catch (e) {
      failure = e;
      facts.repairError = auditErrorCode(e);
    }
    await this.runner
      .run(async () => {
        await this.recorder.record(ctx, WebhookAuditActions.PUSH_SUPERSEDED, credentialId, AuditResult.FAILURE, facts, 'PUSH_SUPERSEDED');
        if (failure === undefined) return;
        await this.outbox.add({
          name: WebhookSecretEvents.ROTATION_FAILED,
          tenantId: stale.tenantId,
          payload: { credentialId, integrationId: stale.integrationId, connectionId: stale.connectionId, rotationId: stale.id, step: 'repair', error: describeError(failure) },
        });
      })
      .catch((e: unknown) => this.logger.warn(`Could not record the superseded push of webhook rotation ${stale.id}: ${describeError(e)}`));
  }
}
