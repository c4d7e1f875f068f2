import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { AuditResult } from '@app/audit';
import { Clock, Outbox, TransactionRunner, type OperationContext } from '@app/common';
import { CredentialErrorCode, CredentialsService, CredentialType, ValueStoreKind, type CredentialMetadata } from '@app/credentials';
import { WebhookSecretState, type WebhookSecretVersionEntity } from './persistence/webhook-secret-version.entity';
import { WebhookSecretVersionRepository } from './persistence/webhook-secret-version.repository';
import { WebhookNothingStagedError, WebhookRotationInProgressError, WebhookSecretUpdateFailedError } from './webhook-secret.errors';
import { WebhookSecretKeyring } from './webhook-secret-keyring';
import type { WebhookRotationResult } from './webhook-secret-rotator';
import { WebhookSecretStates } from './webhook-secret-states';
import type { WebhookSecretUpdater } from './webhook-secret-updater';
import { WebhookRotationRecorder } from './webhook-rotation-recorder';
import { WEBHOOK_SECRETS_CLOCK, WEBHOOK_STAGING_CONNECTION_PREFIX, WEBHOOK_STAGING_TAG, WebhookAuditActions, WebhookSecretEvents } from './webhook-secrets.tokens';

/** Why a pending row was retired unpromoted (its `lastError`): by a caller, past `stagedTtlMs`, by a revoke or a delete of its secret. */
export type WebhookDiscardReason = 'DISCARDED' | 'STAGED_EXPIRED' | 'REVOKED' | 'DELETED';

/**
 * The durable steps of a rotation (see WebhookSecretRotator): prepare (1), push (2), promote (3), and the
 * reads and retirements of a pending row around them. The caller holds the credential's rotation lock.
 */
@Injectable()
export class WebhookRotationSteps {
  constructor(
    private readonly credentials: CredentialsService,
    private readonly rows: WebhookSecretVersionRepository,
    private readonly states: WebhookSecretStates,
    private readonly keyring: WebhookSecretKeyring,
    private readonly runner: TransactionRunner,
    private readonly outbox: Outbox,
    private readonly recorder: WebhookRotationRecorder,
    @Inject(WEBHOOK_SECRETS_CLOCK) private readonly clock: Clock,
  ) {}

  /**
   * Step 1: the staging credential and the pending row, in one transaction. `staged` (operator):
   * the push counts as started now — the value leaves the vault with this call.
   */
  async prepare(ctx: OperationContext, meta: CredentialMetadata, value: string, mode: 'automatic' | 'staged'): Promise<WebhookSecretVersionEntity> {
    const rotationId = randomUUID();
    let row: WebhookSecretVersionEntity | undefined;
    // The pending row and its audit row commit in the staging credential's own transaction (opened once its value is written).
    await this.credentials.store(
      ctx,
      {
        integrationId: meta.integrationId,
        connectionId: WEBHOOK_STAGING_CONNECTION_PREFIX + rotationId,
        type: CredentialType.CUSTOM_SECRET,
        value,
        tags: { [WEBHOOK_STAGING_TAG]: meta.id },
        // A short-lived value: no Key Vault secret name (and soft-deleted name) per rotation.
        valueStore: ValueStoreKind.ENVELOPE,
      },
      {
        internal: true, // under the reserved staging prefix
        inCommit: async (staging) => {
          const now = this.clock.now();
          row = {
            ...this.states.currentRow(meta, 0, now, now),
            id: rotationId,
            credentialVersion: null,
            state: WebhookSecretState.PENDING,
            stagingCredentialId: staging.id,
            currentSince: null,
            pushStartedAt: mode === 'staged' ? now : null,
            stagedOverRowVersion: meta.rowVersion,
          };
          await this.rows.insert(row);
          const action = mode === 'staged' ? WebhookAuditActions.STAGED : WebhookAuditActions.PREPARED;
          await this.recorder.record(ctx, action, meta.id, AuditResult.SUCCESS, { rotationId, replacesVersion: meta.version });
        },
      },
    );
    return row as WebhookSecretVersionEntity;
  }

  /**
   * The value of a pending rotation, or null when its staging credential is gone (deleted by hand):
   * that value cannot be pushed again, so the row is abandoned (retired) and a new rotation starts. The read's error
   * when the row is no longer pending: promoted or discarded by another process (see goneElsewhere), not abandoned here.
   */
  async stagedValue(ctx: OperationContext, meta: CredentialMetadata, pending: WebhookSecretVersionEntity): Promise<string | null> {
    try {
      return (await this.credentials.get(ctx, pending.stagingCredentialId as string)).value;
    } catch (e) {
      if ((e as { code?: unknown }).code !== CredentialErrorCode.NOT_FOUND) throw e;
      const abandoned = await this.runner.run(async () => {
        if (!(await this.rows.transition(pending.id, WebhookSecretState.PENDING, { state: WebhookSecretState.RETIRED, lastError: 'STAGING_CREDENTIAL_MISSING', updatedAt: this.clock.now() }))) return false;
        await this.recorder.record(ctx, WebhookAuditActions.PUSH_FAILED, meta.id, AuditResult.FAILURE, { rotationId: pending.id, step: 'resume', abandoned: true }, 'STAGING_CREDENTIAL_MISSING');
        return true;
      });
      if (!abandoned) throw e;
      return null;
    }
  }

  /**
   * Step 2: install the value at the provider; a failure is recorded and rethrown as UPDATE_FAILED. False, and
   * nothing pushed, when the row is no longer pending (see movedOn): the value may no longer be the newest.
   */
  async push(ctx: OperationContext, meta: CredentialMetadata, pending: WebhookSecretVersionEntity, updater: WebhookSecretUpdater, value: string): Promise<boolean> {
    const now = this.clock.now();
    // A compare-and-set on the state also when the push had started: it narrows, never closes, the window of a push
    // that outlives its lock (supersededRow and repairStalePush deal with one that lands late).
    if (!(await this.rows.transition(pending.id, WebhookSecretState.PENDING, { ...(pending.pushStartedAt ? {} : { pushStartedAt: now }), updatedAt: now }))) return false;
    if (!pending.pushStartedAt) this.keyring.invalidate(meta.id);
    try {
      await updater.update({
        context: ctx,
        credentialId: meta.id,
        integrationId: meta.integrationId,
        connectionId: meta.connectionId,
        newSecret: value,
        rotationId: pending.id,
        replacesVersion: meta.version,
      });
    } catch (e) {
      await this.recorder.failure(ctx, meta, pending, 'push', e);
      throw new WebhookSecretUpdateFailedError(meta.id, { cause: e });
    }
    await this.recorder.record(ctx, WebhookAuditActions.PUSHED, meta.id, AuditResult.SUCCESS, { rotationId: pending.id, attempt: pending.attempts + 1 });
    return true;
  }

  /** Step 3: the new current version and every row change, in one transaction. */
  async promote(ctx: OperationContext, meta: CredentialMetadata, pending: WebhookSecretVersionEntity, value: string, resumed: boolean): Promise<WebhookRotationResult> {
    try {
      const elsewhere = await this.promotedElsewhere(meta, pending.id);
      if (elsewhere) return elsewhere; // before writing the value to the vault a second time
      const fresh = await this.credentials.getMetadata(ctx, meta.id);
      const now = this.clock.now();
      let result: WebhookRotationResult | undefined;
      // Every row change commits in the rotate's own transaction, which opens once the new value is in the
      // vault (compare-and-set on the version read here: a concurrent change fails it, nothing is written).
      await this.credentials.rotate(ctx, meta.id, value, {
        expectedVersion: fresh.rowVersion,
        expiresAt: renewedExpiry(fresh, now),
        inCommit: async (rotated) => {
          const active = await this.rows.active(meta.id);
          const current = active.find((r) => r.state === WebhookSecretState.CURRENT);
          const { liveUntil: previousLiveUntil, retired } = current ? await this.states.demote(current, active, now) : { liveUntil: now, retired: [] };
          const promoted = await this.rows.transition(pending.id, WebhookSecretState.PENDING, {
            state: WebhookSecretState.CURRENT,
            credentialVersion: rotated.version,
            currentSince: now,
            stagingCredentialId: null,
            updatedAt: now,
          });
          // No longer pending: another process changed this rotation after this one lost its lock session.
          if (!promoted) throw new WebhookRotationInProgressError(meta.id);
          await this.credentials.delete(ctx, pending.stagingCredentialId as string);
          const facts = { rotationId: pending.id, version: rotated.version, previousVersion: fresh.version, previousLiveUntil: previousLiveUntil.toISOString(), retiredVersions: retired, resumed };
          await this.recorder.record(ctx, WebhookAuditActions.ROTATED, meta.id, AuditResult.SUCCESS, facts);
          await this.outbox.add({ name: WebhookSecretEvents.ROTATED, tenantId: meta.tenantId, payload: { credentialId: meta.id, integrationId: meta.integrationId, connectionId: meta.connectionId, ...facts } });
          this.runner.afterCommit(() => this.keyring.invalidate(meta.id));
          result = { credentialId: meta.id, outcome: 'rotated', rotationId: pending.id, version: rotated.version, previousVersion: fresh.version, previousLiveUntil, resumed };
        },
      });
      return result as WebhookRotationResult;
    } catch (e) {
      // Best effort: a database that is gone must not mask the original error.
      const elsewhere = await this.promotedElsewhere(meta, pending.id).catch(() => null);
      if (elsewhere) return elsewhere;
      await this.recorder.failure(ctx, meta, pending, 'promote', e);
      throw e;
    }
  }

  /**
   * This rotation, when another process promoted it already: a push that outlived its lock session (a lost
   * connection frees an advisory lock) while another replica resumed and completed the same rotation. Its
   * answer is that promotion's, and nothing is written again — no second version, no failure reported.
   */
  async promotedElsewhere(meta: CredentialMetadata, rotationId: string): Promise<WebhookRotationResult | null> {
    const rows = await this.rows.history(meta.id);
    const row = rows.find((r) => r.id === rotationId);
    if (!row || row.state === WebhookSecretState.PENDING || row.credentialVersion === null) return null;
    const previous = rows.find((r) => r.credentialVersion === meta.version);
    return { credentialId: meta.id, outcome: 'rotated', rotationId, version: row.credentialVersion, previousVersion: meta.version, previousLiveUntil: previous?.liveUntil ?? undefined, resumed: true };
  }

  /** Retires a pending row and deletes its staging credential, in one transaction, audited (the secret may be deleted). */
  async discard(ctx: OperationContext, meta: Pick<CredentialMetadata, 'id'>, pending: WebhookSecretVersionEntity, reason: WebhookDiscardReason): Promise<void> {
    await this.runner.run(async () => {
      const now = this.clock.now();
      if (!(await this.rows.transition(pending.id, WebhookSecretState.PENDING, { state: WebhookSecretState.RETIRED, stagingCredentialId: null, lastError: reason, updatedAt: now }))) {
        throw new WebhookNothingStagedError(meta.id);
      }
      if (pending.stagingCredentialId) {
        await this.credentials.delete(ctx, pending.stagingCredentialId).catch((e: unknown) => {
          if ((e as { code?: unknown }).code !== CredentialErrorCode.NOT_FOUND) throw e;
        });
      }
      await this.recorder.record(ctx, WebhookAuditActions.DISCARDED, meta.id, AuditResult.SUCCESS, { rotationId: pending.id, reason, stagedAt: pending.createdAt.toISOString() });
      this.runner.afterCommit(() => this.keyring.invalidate(meta.id));
    });
  }
}

/**
 * The new secret's expiry: as long a lifetime as the one it replaces had (from its rotation, else its
 * creation), counted from now — copying the old date would give it the old one's death, or none left.
 */
export function renewedExpiry(old: Pick<CredentialMetadata, 'expiresAt' | 'rotatedAt' | 'createdAt'>, now: Date): Date | null {
  if (old.expiresAt === null) return null;
  const lifetime = old.expiresAt.getTime() - (old.rotatedAt ?? old.createdAt).getTime();
  return lifetime > 0 ? new Date(now.getTime() + lifetime) : null;
}
