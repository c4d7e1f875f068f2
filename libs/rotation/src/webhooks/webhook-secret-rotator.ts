import { Inject, Injectable } from '@nestjs/common';
import { AuditAction, AuditResult } from '@app/audit';
import { Clock, type OperationContext } from '@app/common';
import { CredentialNotFoundError, CredentialsService, CredentialStatus, CredentialType, type CredentialMetadata } from '@app/credentials';
import { WebhookSecretState, type WebhookSecretVersionEntity } from './persistence/webhook-secret-version.entity';
import { WebhookSecretVersionRepository } from './persistence/webhook-secret-version.repository';
import { generateWebhookSecret } from './standard-webhooks';
import { WebhookLostLockRecovery } from './webhook-lost-lock-recovery';
import { WebhookRotationLock, type RotationAsk, type WebhookRotationCaller } from './webhook-rotation-lock';
import { WebhookRotationRecorder } from './webhook-rotation-recorder';
import { WebhookRotationSteps, type WebhookDiscardReason } from './webhook-rotation-steps';
import {
  WebhookNothingStagedError,
  WebhookSecretAlreadyStagedError,
  WebhookStagedRotationMismatchError,
  WebhookStagedSecretExpiredError,
  WebhookSecretUpdaterNotRegisteredError,
} from './webhook-secret.errors';
import { WebhookSecretKeyring } from './webhook-secret-keyring';
import { WebhookSecretUpdaterRegistry, type WebhookSecretUpdater } from './webhook-secret-updater';
import type { ResolvedWebhookSecretsOptions } from './webhook-secrets.options';
import { WEBHOOK_SECRETS_CLOCK, WEBHOOK_SECRETS_OPTIONS, WebhookAuditActions } from './webhook-secrets.tokens';

export type { WebhookRotationCaller } from './webhook-rotation-lock';

export interface WebhookRotationResult {
  credentialId: string;
  /** `rotated`; `not_due` when `ifCurrentSince` found a newer current secret (someone rotated first). */
  outcome: 'rotated' | 'not_due';
  /** The id of this rotation (the pending row); stable across retries. */
  rotationId?: string;
  /** The credential version now current. */
  version: number;
  previousVersion?: number;
  /** Until when the previous secret still verifies. */
  previousLiveUntil?: Date;
  /** True when an interrupted or failed rotation was completed. */
  resumed?: boolean;
}

/** A secret staged by an operator: install `secret` at the provider, then activate it. Shown once; never log it. */
export interface StagedWebhookSecret {
  credentialId: string;
  /** Names this rotation in `activate` and `discard`. */
  rotationId: string;
  secret: string;
  stagedAt: Date;
  /** Not activated by then: discarded (the current secret stays current). */
  activateBefore: Date;
  /** The credential version that stays current until the activation. */
  replacesVersion: number;
}

export interface WebhookDiscardResult {
  credentialId: string;
  rotationId: string;
  /** The credential version that stays current. */
  version: number;
}

/** The revoke a late event announces (`discardIfEnded`): the credential's row version after it, and when it was made. */
export interface WebhookRevokeMark {
  /** The credential's `rowVersion` the revoke committed; undefined in an event that carries none. */
  rowVersion?: number;
  /** Its event's `occurredAt` (an invalid date bounds nothing): the cut-off for rows without `stagedOverRowVersion`. */
  at: Date;
}

export interface WebhookRotateOptions {
  /** Rotate only if the current secret became current at or before this instant (the job's due check, repeated under the lock). */
  ifCurrentSince?: Date;
}

/**
 * The two-phase rotation, one per credential at a time across replicas (`credentialRotation` lock).
 *
 * Crash safety — each step is durable before the next starts, and a failure anywhere leaves the old
 * secret current (the credential's current version does not move until step 3 commits):
 * 1. prepare (one transaction): the new value is stored as a separate *staging* credential
 *    (`custom_secret`, connection `whsec-pending.<rotation id>`, envelope store), and a `pending` row
 *    points at it. `get()` of the webhook credential never serves it: CredentialsService.rotate is not
 *    called yet. A crash before the commit leaves nothing (an orphan value version at most).
 * 2. push: `pushStartedAt` is recorded, then the updater installs the value at the provider. From
 *    then on verification also accepts the pending secret (the provider may sign with it). A failure
 *    is recorded (attempts, error name/code, audit, `webhook_secret.rotation_failed`) and the row stays
 *    pending; a crash leaves it pending. The next attempt pushes the SAME value again (idempotent).
 * 3. promote (one transaction): CredentialsService.rotate writes the value as the new current
 *    version (compare-and-set on the row version), the old current row becomes `live` until now +
 *    overlap (the oldest beyond `maxLiveSecrets` retire), the pending row becomes `current`, the
 *    staging credential is deleted, audit + `webhook_secret.rotated` outbox row. All or nothing.
 * A pending row is resumed by the next `rotate()` of the credential or the next job run.
 *
 * Operator-confirmed rotation (integrations without an updater — most providers only take a secret in
 * their dashboard): `stage` is step 1 with the push marked started at once (the value is handed to the
 * operator, so the provider may sign with it from now on and verification accepts it), and returns the
 * value, once; `activate` is step 3, after the operator installed it; `discard` retires it. A staged
 * secret not activated within `stagedTtlMs` is discarded (by the job, or by a late `activate`).
 *
 * This class decides which step comes next; its collaborators in this folder do them: WebhookRotationLock (the
 * lock, the credential, refusals audited), WebhookRotationSteps (steps 1–3, discards), WebhookLostLockRecovery (a
 * rotation that outlived its lock session), WebhookRotationRecorder (audit rows, a failed step's records).
 */
@Injectable()
export class WebhookSecretRotator {
  constructor(
    private readonly credentials: CredentialsService,
    private readonly rows: WebhookSecretVersionRepository,
    private readonly keyring: WebhookSecretKeyring,
    private readonly updaters: WebhookSecretUpdaterRegistry,
    private readonly lock: WebhookRotationLock,
    private readonly steps: WebhookRotationSteps,
    private readonly recovery: WebhookLostLockRecovery,
    private readonly recorder: WebhookRotationRecorder,
    @Inject(WEBHOOK_SECRETS_CLOCK) private readonly clock: Clock,
    @Inject(WEBHOOK_SECRETS_OPTIONS) private readonly options: ResolvedWebhookSecretsOptions,
  ) {}

  /** Rotates (or completes a pending rotation of) a webhook secret. See the class comment. */
  async rotate(ctx: OperationContext, credentialId: string, options: WebhookRotateOptions = {}, by: WebhookRotationCaller = 'caller'): Promise<WebhookRotationResult> {
    const asked: RotationAsk = { action: AuditAction.ROTATE, by };
    let stale: WebhookSecretVersionEntity | undefined;
    try {
      return await this.lock.locked(ctx, asked, credentialId, () => this.rotateLocked(ctx, asked, credentialId, options, (row) => (stale = row)));
    } finally {
      // After the lock callback: the repair takes the lock again (this process still held it until then).
      if (stale) await this.recovery.repairStalePush(ctx, credentialId, stale);
    }
  }

  /** Operator step 1: a new secret, pending and already accepted by verification; returned once. */
  stage(ctx: OperationContext, credentialId: string): Promise<StagedWebhookSecret> {
    // Waits for a rotation in flight: once a concurrent stage commits, the answer is ALREADY_STAGED naming
    // it (what a later stage gets), not IN_PROGRESS, which would send the client back to stage again.
    const asked: RotationAsk = { action: WebhookAuditActions.STAGED, by: 'caller' };
    return this.lock.lockedWaiting(credentialId, { ctx, asked }, async () => {
      const meta = await this.lock.rotatable(ctx, credentialId, asked);
      const pending = (await this.keyring.enrolled(ctx, meta)).find((r) => r.state === WebhookSecretState.PENDING);
      if (pending) throw new WebhookSecretAlreadyStagedError(meta.id, pending.id);
      const secret = generateWebhookSecret();
      const row = await this.steps.prepare(ctx, meta, secret, 'staged');
      this.keyring.invalidate(meta.id);
      const activateBefore = new Date(row.createdAt.getTime() + this.options.stagedTtlMs);
      return { credentialId: meta.id, rotationId: row.id, secret, stagedAt: row.createdAt, activateBefore, replacesVersion: meta.version };
    });
  }

  /**
   * Operator step 3: the staged secret (the one named by `rotationId`, when given) becomes current;
   * the previous one verifies through the overlap window. A stale one is discarded instead.
   */
  activate(ctx: OperationContext, credentialId: string, rotationId?: string): Promise<WebhookRotationResult> {
    // Its promotion is a rotation of the credential (the Credentials lib's `rotate` row): a refusal is one too.
    const asked: RotationAsk = { action: AuditAction.ROTATE, by: 'caller' };
    return this.lock.locked(ctx, asked, credentialId, async () => {
      const meta = await this.lock.rotatable(ctx, credentialId, asked);
      const pending = await this.pendingOf(ctx, meta, rotationId);
      if (this.stale(pending, meta.integrationId)) {
        await this.steps.discard(ctx, meta, pending, 'STAGED_EXPIRED');
        throw new WebhookStagedSecretExpiredError(meta.id, pending.id);
      }
      const value = await this.steps.stagedValue(ctx, meta, pending).catch(async (e: unknown) => {
        if (await this.recovery.goneElsewhere(e, meta.id, pending.id)) return this.recovery.movedOn(ctx, asked, meta, pending.id);
        throw e;
      });
      if (value === null) throw new WebhookNothingStagedError(meta.id);
      if (typeof value !== 'string') return value;
      if (!pending.pushStartedAt) {
        // An automatic rotation whose push never started, installed by hand: accepted from now on.
        await this.rows.transition(pending.id, WebhookSecretState.PENDING, { pushStartedAt: this.clock.now(), updatedAt: this.clock.now() });
      }
      await this.recorder.record(ctx, WebhookAuditActions.PUSHED, meta.id, AuditResult.SUCCESS, { rotationId: pending.id, by: 'operator' });
      return this.steps.promote(ctx, meta, pending, value, false);
    });
  }

  /** Discards the staged (or pending) secret: retired, its value deleted, the current one stays. */
  discard(
    ctx: OperationContext,
    credentialId: string,
    rotationId?: string,
    reason: Exclude<WebhookDiscardReason, 'REVOKED' | 'DELETED'> = 'DISCARDED',
    by: WebhookRotationCaller = 'caller',
  ): Promise<WebhookDiscardResult> {
    const asked: RotationAsk = { action: WebhookAuditActions.DISCARDED, by };
    return this.lock.locked(ctx, asked, credentialId, async () => {
      const meta = await this.lock.webhookSecret(ctx, credentialId, asked);
      const pending = await this.pendingOf(ctx, meta, rotationId);
      await this.steps.discard(ctx, meta, pending, reason);
      return { credentialId: meta.id, rotationId: pending.id, version: meta.version };
    });
  }

  /**
   * A revoke of the webhook secret discards its pending rotation (`REVOKED`): a successor staged while the revoked
   * secret was live stays neither readable nor verifying nor ready to activate. The caller (RevocationService) holds
   * the credential's rotation lock — the one `locked` takes — and calls this inside the revoke's transaction; and
   * inside an un-revoke's too: a revoked secret stages nothing, so what is pending then was staged before a revoke
   * that did not discard it (a bare status change whose event was not dispatched yet).
   */
  discardOnRevoke(ctx: OperationContext, meta: CredentialMetadata): Promise<void> {
    return this.discardPending(ctx, meta.id, 'REVOKED');
  }

  /**
   * Why the credential can have no successor: `DELETED` (gone), `REVOKED` (a revoked webhook secret), else null. A
   * metadata read, unaudited (the job's pre-check; `discardIfEnded` repeats it under the lock).
   */
  async ended(ctx: OperationContext, credentialId: string): Promise<'DELETED' | 'REVOKED' | null> {
    try {
      const meta = await this.credentials.getMetadata(ctx, credentialId);
      return meta.type === CredentialType.WEBHOOK_SECRET && meta.status === CredentialStatus.REVOKED ? 'REVOKED' : null;
    } catch (e) {
      if (e instanceof CredentialNotFoundError) return 'DELETED';
      throw e;
    }
  }

  /**
   * `discardOnRevoke` for a secret revoked without RevocationService (a bare status change: `updateMetadata`,
   * `CredentialsService.revoke`), and the same for a deleted one (`DELETED`: every delete path), from the change's
   * outbox event (WebhookSecretEndedCleanup) or the job: under the credential's rotation lock, so a stage or rotation in
   * flight commits first and its pending row is found. Looks at the credential now: one revoked or gone loses what is
   * pending; nothing pending is nothing to do (idempotent). One live again is left alone — unless `revoke` says this is
   * for a revoke (its event): un-revoked since by a bare `unrevoke`, the secret still loses what was staged before that
   * revoke (presumed exposed with it), and keeps one staged after it. Which is which, the row versions say: a rotation
   * prepared over an earlier row version than the revoke's did not see it — never two replicas' clocks, which drift
   * (rows of an older release, without one: staged at or before the event's time). A lock held past `waitMs` (a stage's
   * wait by default) is IN_PROGRESS (the event comes back). Returns why it ended, or null when it is live.
   */
  discardIfEnded(ctx: OperationContext, credentialId: string, waitMs?: number, revoke?: WebhookRevokeMark): Promise<'DELETED' | 'REVOKED' | null> {
    const work = async () => {
      const ended = await this.ended(ctx, credentialId);
      if (ended) await this.discardPending(ctx, credentialId, ended);
      else if (revoke) await this.discardPending(ctx, credentialId, 'REVOKED', revoke);
      return ended;
    };
    return this.lock.lockedWaiting(credentialId, null, work, waitMs);
  }

  /** Discards the credential's pending rows (its rows only: another tenant's id is none of this one's), those staged before `revoke` when given. */
  private async discardPending(ctx: OperationContext, credentialId: string, reason: 'DELETED' | 'REVOKED', revoke?: WebhookRevokeMark): Promise<void> {
    for (const row of await this.rows.active(credentialId)) {
      if (row.state !== WebhookSecretState.PENDING || row.tenantId !== ctx.tenantId) continue;
      if (revoke && !stagedBefore(row, revoke)) continue;
      await this.steps.discard(ctx, { id: credentialId }, row, reason);
    }
  }

  /**
   * A staged secret of an integration without an updater that waited longer than `stagedTtlMs`.
   * Pending rotations of integrations with an updater are never stale: the job retries them.
   */
  stale(row: Pick<WebhookSecretVersionEntity, 'createdAt' | 'state'>, integrationId: string): boolean {
    if (row.state !== WebhookSecretState.PENDING || this.hasUpdater(integrationId)) return false;
    return row.createdAt.getTime() + this.options.stagedTtlMs <= this.clock.now().getTime();
  }

  /**
   * Whether `rotate()` finds an updater for the integration: asked as it asks, by the registry's `get` (an embedding
   * app's registry may answer `get` for integrations its `has` does not know), so the job and `stale` agree with it.
   * Only NOT_REGISTERED says no; another error from `get` is the rotation's to meet and record as a failure.
   */
  hasUpdater(integrationId: string): boolean {
    try {
      this.updaters.get(integrationId);
      return true;
    } catch (e) {
      return !(e instanceof WebhookSecretUpdaterNotRegisteredError);
    }
  }

  private async pendingOf(ctx: OperationContext, meta: CredentialMetadata, rotationId?: string): Promise<WebhookSecretVersionEntity> {
    const rows = await this.keyring.enrolled(ctx, meta);
    const pending = rows.find((r) => r.state === WebhookSecretState.PENDING);
    if (!pending) {
      // Asked again after it went through (a rerun after a kill that came after the commit): say so, not "stage one".
      const done = rotationId === undefined ? undefined : rows.find((r) => r.id === rotationId && r.credentialVersion !== null);
      throw new WebhookNothingStagedError(meta.id, done ? `rotation ${rotationId} was already activated (version ${done.credentialVersion})` : undefined);
    }
    if (rotationId !== undefined && pending.id !== rotationId) throw new WebhookStagedRotationMismatchError(meta.id);
    return pending;
  }

  private async rotateLocked(
    ctx: OperationContext,
    asked: RotationAsk,
    credentialId: string,
    options: WebhookRotateOptions,
    onStalePush: (row: WebhookSecretVersionEntity) => void,
  ): Promise<WebhookRotationResult> {
    const meta = await this.lock.rotatable(ctx, credentialId, asked);
    // Before any write: no updater, no pending row (the job only rotates integrations that have one).
    const updater = await this.updaterOf(ctx, asked, meta);
    const active = await this.keyring.enrolled(ctx, meta);
    let pending = active.find((r) => r.state === WebhookSecretState.PENDING);
    const current = active.find((r) => r.state === WebhookSecretState.CURRENT);
    if (!pending && options.ifCurrentSince && current?.currentSince && current.currentSince.getTime() > options.ifCurrentSince.getTime()) {
      return { credentialId, outcome: 'not_due', version: current.credentialVersion ?? meta.version };
    }
    let value: string | null = null;
    if (pending) {
      try {
        value = await this.steps.stagedValue(ctx, meta, pending);
      } catch (e) {
        if (await this.recovery.goneElsewhere(e, meta.id, pending.id)) return this.recovery.movedOn(ctx, asked, meta, pending.id);
        throw e;
      }
    }
    if (value === null) pending = undefined;
    const resumed = pending !== undefined;
    if (!pending) {
      pending = await this.steps.prepare(ctx, meta, generateWebhookSecret(), 'automatic');
      try {
        // Push what the store holds: a crash from here on resumes with this same value.
        value = (await this.credentials.get(ctx, pending.stagingCredentialId as string)).value;
      } catch (e) {
        if (await this.recovery.goneElsewhere(e, meta.id, pending.id)) return this.recovery.movedOn(ctx, asked, meta, pending.id);
        throw e;
      }
    }
    if (!(await this.steps.push(ctx, meta, pending, updater, value as string))) return this.recovery.movedOn(ctx, asked, meta, pending.id);
    const stale = await this.recovery.supersededRow(meta.id, pending.id);
    if (stale) {
      // Promoted (or discarded) and then superseded elsewhere while this push was in flight: never promoted here.
      onStalePush(stale);
      return this.recovery.movedOn(ctx, asked, meta, pending.id, false); // the repair's row tells of it
    }
    return this.steps.promote(ctx, meta, pending, value as string, resumed);
  }

  /** The integration's updater; without one the step is refused before any write, audited as `refused` says. */
  private async updaterOf(ctx: OperationContext, asked: RotationAsk, meta: CredentialMetadata): Promise<WebhookSecretUpdater> {
    try {
      return this.updaters.get(meta.integrationId);
    } catch (e) {
      throw e instanceof WebhookSecretUpdaterNotRegisteredError ? await this.lock.refused(ctx, asked, meta, e) : e;
    }
  }
}

/**
 * Whether a pending row was staged before the revoke: prepared over an earlier row version than the revoke committed
 * (the stage read the credential under its rotation lock, a revoke bumps its row version); a row or an event without
 * one (an older release's), created at or before the event's time — an invalid time bounds nothing.
 */
function stagedBefore(row: Pick<WebhookSecretVersionEntity, 'stagedOverRowVersion' | 'createdAt'>, revoke: WebhookRevokeMark): boolean {
  if (row.stagedOverRowVersion !== null && revoke.rowVersion !== undefined) return row.stagedOverRowVersion < revoke.rowVersion;
  return !(row.createdAt.getTime() > revoke.at.getTime());
}
