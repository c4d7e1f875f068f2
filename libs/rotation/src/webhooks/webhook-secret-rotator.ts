import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuditAction, type AuditActionName, auditErrorCode, AuditResult, AuditService } from '@app/audit';
import { Clock, DistributedLock, describeError, LockTimeoutError, Outbox, prefixedLockKey, TransactionRunner, type OperationContext } from '@app/common';
import { CredentialErrorCode, CredentialNotFoundError, CredentialRevokedError, CredentialsService, CredentialStatus, CredentialType, ValueStoreKind, type CredentialMetadata } from '@app/credentials';
import { auditRefusal } from '../internal/audit-failure';
import { WebhookSecretState, type WebhookSecretVersionEntity } from './persistence/webhook-secret-version.entity';
import { WebhookSecretVersionRepository } from './persistence/webhook-secret-version.repository';
import { generateWebhookSecret } from './standard-webhooks';
import {
  NotAWebhookSecretError,
  WebhookNothingStagedError,
  WebhookRotationInProgressError,
  WebhookSecretAlreadyStagedError,
  WebhookSecretUpdateFailedError,
  WebhookStagedRotationMismatchError,
  WebhookStagedSecretExpiredError,
} from './webhook-secret.errors';
import { WebhookSecretKeyring } from './webhook-secret-keyring';
import { WebhookSecretStates } from './webhook-secret-states';
import { WebhookSecretUpdaterRegistry, type WebhookSecretUpdater } from './webhook-secret-updater';
import type { ResolvedWebhookSecretsOptions } from './webhook-secrets.options';
import {
  WEBHOOK_SECRETS_CLOCK,
  WEBHOOK_SECRETS_LOCK,
  WEBHOOK_SECRETS_OPTIONS,
  WEBHOOK_STAGING_CONNECTION_PREFIX,
  WEBHOOK_STAGING_TAG,
  WebhookAuditActions,
  WebhookSecretEvents,
} from './webhook-secrets.tokens';

/** How long a stage waits for another rotation step of the same credential before answering IN_PROGRESS. */
const STAGE_LOCK_WAIT_MS = 10_000;

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

export interface WebhookRotateOptions {
  /** Rotate only if the current secret became current at or before this instant (the job's due check, repeated under the lock). */
  ifCurrentSince?: Date;
}

/**
 * Who asks for a rotation step. A caller's id its tenant does not have is a refused change, audited (denied,
 * NOT_FOUND) as the Credentials lib audits a change of one; the job's is a deleted credential whose rows it then
 * forgets — bookkeeping, not audited (a tenant deleting many would otherwise trip the job actor's failure counters).
 */
export type WebhookRotationCaller = 'caller' | 'job';

/** The change a refusal is audited as, and for whom. */
interface Asked {
  action: AuditActionName;
  by: WebhookRotationCaller;
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
 */
@Injectable()
export class WebhookSecretRotator {
  private readonly logger = new Logger(WebhookSecretRotator.name);

  constructor(
    private readonly credentials: CredentialsService,
    private readonly rows: WebhookSecretVersionRepository,
    private readonly states: WebhookSecretStates,
    private readonly keyring: WebhookSecretKeyring,
    private readonly updaters: WebhookSecretUpdaterRegistry,
    private readonly runner: TransactionRunner,
    private readonly outbox: Outbox,
    private readonly audit: AuditService,
    @Inject(WEBHOOK_SECRETS_LOCK) private readonly lock: DistributedLock,
    @Inject(WEBHOOK_SECRETS_CLOCK) private readonly clock: Clock,
    @Inject(WEBHOOK_SECRETS_OPTIONS) private readonly options: ResolvedWebhookSecretsOptions,
  ) {}

  /** Rotates (or completes a pending rotation of) a webhook secret. See the class comment. */
  async rotate(ctx: OperationContext, credentialId: string, options: WebhookRotateOptions = {}, by: WebhookRotationCaller = 'caller'): Promise<WebhookRotationResult> {
    const asked: Asked = { action: AuditAction.ROTATE, by };
    let stale: WebhookSecretVersionEntity | undefined;
    try {
      return await this.locked(ctx, asked, credentialId, () => this.rotateLocked(ctx, asked, credentialId, options, (row) => (stale = row)));
    } finally {
      // After the lock callback: the repair takes the lock again (this process still held it until then).
      if (stale) await this.repairStalePush(ctx, credentialId, stale);
    }
  }

  /** Operator step 1: a new secret, pending and already accepted by verification; returned once. */
  stage(ctx: OperationContext, credentialId: string): Promise<StagedWebhookSecret> {
    // Waits for a rotation in flight: once a concurrent stage commits, the answer is ALREADY_STAGED naming
    // it (what a later stage gets), not IN_PROGRESS, which would send the client back to stage again.
    const asked: Asked = { action: WebhookAuditActions.STAGED, by: 'caller' };
    return this.lockedWaiting(credentialId, { ctx, asked }, async () => {
      const meta = await this.rotatable(ctx, credentialId, asked);
      const pending = (await this.keyring.enrolled(ctx, meta)).find((r) => r.state === WebhookSecretState.PENDING);
      if (pending) throw new WebhookSecretAlreadyStagedError(meta.id, pending.id);
      const secret = generateWebhookSecret();
      const row = await this.prepare(ctx, meta, secret, 'staged');
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
    const asked: Asked = { action: AuditAction.ROTATE, by: 'caller' };
    return this.locked(ctx, asked, credentialId, async () => {
      const meta = await this.rotatable(ctx, credentialId, asked);
      const pending = await this.pendingOf(ctx, meta, rotationId);
      if (this.stale(pending, meta.integrationId)) {
        await this.discardRow(ctx, meta, pending, 'STAGED_EXPIRED');
        throw new WebhookStagedSecretExpiredError(meta.id, pending.id);
      }
      const value = await this.stagedValue(ctx, meta, pending).catch(async (e: unknown) => {
        if (await this.goneElsewhere(e, meta.id, pending.id)) return this.movedOn(meta, pending.id);
        throw e;
      });
      if (value === null) throw new WebhookNothingStagedError(meta.id);
      if (typeof value !== 'string') return value;
      if (!pending.pushStartedAt) {
        // An automatic rotation whose push never started, installed by hand: accepted from now on.
        await this.rows.transition(pending.id, WebhookSecretState.PENDING, { pushStartedAt: this.clock.now(), updatedAt: this.clock.now() });
      }
      await this.record(ctx, WebhookAuditActions.PUSHED, meta.id, AuditResult.SUCCESS, { rotationId: pending.id, by: 'operator' });
      return this.promote(ctx, meta, pending, value, false);
    });
  }

  /** Discards the staged (or pending) secret: retired, its value deleted, the current one stays. */
  discard(
    ctx: OperationContext,
    credentialId: string,
    rotationId?: string,
    reason: 'DISCARDED' | 'STAGED_EXPIRED' = 'DISCARDED',
    by: WebhookRotationCaller = 'caller',
  ): Promise<WebhookDiscardResult> {
    const asked: Asked = { action: WebhookAuditActions.DISCARDED, by };
    return this.locked(ctx, asked, credentialId, async () => {
      const meta = await this.load(ctx, credentialId, asked);
      if (meta.type !== CredentialType.WEBHOOK_SECRET) throw new NotAWebhookSecretError(credentialId);
      const pending = await this.pendingOf(ctx, meta, rotationId);
      await this.discardRow(ctx, meta, pending, reason);
      return { credentialId: meta.id, rotationId: pending.id, version: meta.version };
    });
  }

  /**
   * A staged secret of an integration without an updater that waited longer than `stagedTtlMs`.
   * Pending rotations of integrations with an updater are never stale: the job retries them.
   */
  stale(row: Pick<WebhookSecretVersionEntity, 'createdAt' | 'state'>, integrationId: string): boolean {
    if (row.state !== WebhookSecretState.PENDING || this.updaters.has(integrationId)) return false;
    return row.createdAt.getTime() + this.options.stagedTtlMs <= this.clock.now().getTime();
  }

  private async locked<T>(ctx: OperationContext, asked: Asked, credentialId: string, work: () => Promise<T>): Promise<T> {
    const result = await this.lock.tryRun(prefixedLockKey('credentialRotation', credentialId), work);
    if (!result.acquired) throw await this.inProgress(ctx, asked, credentialId);
    return result.value;
  }

  /**
   * As `locked`, but waits up to STAGE_LOCK_WAIT_MS for the holder (a stage takes well under a second). Without
   * `refusal` (the repair of a superseded push, audited as that), a lock still held is not audited here.
   */
  private async lockedWaiting<T>(credentialId: string, refusal: { ctx: OperationContext; asked: Asked } | null, work: () => Promise<T>): Promise<T> {
    try {
      return await this.lock.run(prefixedLockKey('credentialRotation', credentialId), work, { timeoutMs: STAGE_LOCK_WAIT_MS });
    } catch (e) {
      // Still held (an automatic rotation's push to a slow provider): a rotation is in progress indeed.
      if (!(e instanceof LockTimeoutError)) throw e;
      throw refusal ? await this.inProgress(refusal.ctx, refusal.asked, credentialId) : new WebhookRotationInProgressError(credentialId);
    }
  }

  /**
   * The refusal of a step while another holds the credential's lock, audited once here (failure, 3122,
   * `details.version`). The lock is keyed by the id alone: an id the caller's tenant does not have is NOT_FOUND
   * (see `load`), never IN_PROGRESS, which would tell that it exists and rotates. Only a refusal before the step
   * began: the same code from a promotion refused inside the credential's write is the Credentials lib's row.
   */
  private async inProgress(ctx: OperationContext, asked: Asked, credentialId: string): Promise<WebhookRotationInProgressError> {
    const meta = await this.load(ctx, credentialId, asked);
    const refused = new WebhookRotationInProgressError(credentialId);
    await auditRefusal(this.audit, this.logger, { action: asked.action, ctx, credentialId, error: refused, details: { version: meta.version } });
    return refused;
  }

  /** The credential a step changes; a caller's unknown id is audited (see WebhookRotationCaller). */
  private async load(ctx: OperationContext, credentialId: string, asked?: Asked): Promise<CredentialMetadata> {
    try {
      return await this.credentials.getMetadata(ctx, credentialId);
    } catch (e) {
      if (asked?.by === 'caller' && e instanceof CredentialNotFoundError) await auditRefusal(this.audit, this.logger, { action: asked.action, ctx, credentialId, error: e });
      throw e;
    }
  }

  private async rotatable(ctx: OperationContext, credentialId: string, asked?: Asked): Promise<CredentialMetadata> {
    const meta = await this.load(ctx, credentialId, asked);
    if (meta.type !== CredentialType.WEBHOOK_SECRET) throw new NotAWebhookSecretError(credentialId);
    // CredentialsService.rotate makes a credential active again: a rotation must never un-revoke.
    if (meta.status === CredentialStatus.REVOKED) throw new CredentialRevokedError(credentialId);
    return meta;
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

  /** Retires a pending row and deletes its staging credential, in one transaction, audited. */
  private async discardRow(ctx: OperationContext, meta: CredentialMetadata, pending: WebhookSecretVersionEntity, reason: 'DISCARDED' | 'STAGED_EXPIRED'): Promise<void> {
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
      await this.record(ctx, WebhookAuditActions.DISCARDED, meta.id, AuditResult.SUCCESS, { rotationId: pending.id, reason, stagedAt: pending.createdAt.toISOString() });
      this.runner.afterCommit(() => this.keyring.invalidate(meta.id));
    });
  }

  private async rotateLocked(
    ctx: OperationContext,
    asked: Asked,
    credentialId: string,
    options: WebhookRotateOptions,
    onStalePush: (row: WebhookSecretVersionEntity) => void,
  ): Promise<WebhookRotationResult> {
    const meta = await this.rotatable(ctx, credentialId, asked);
    const updater = this.updaters.get(meta.integrationId); // before any write: no updater, no pending row
    const active = await this.keyring.enrolled(ctx, meta);
    let pending = active.find((r) => r.state === WebhookSecretState.PENDING);
    const current = active.find((r) => r.state === WebhookSecretState.CURRENT);
    if (!pending && options.ifCurrentSince && current?.currentSince && current.currentSince.getTime() > options.ifCurrentSince.getTime()) {
      return { credentialId, outcome: 'not_due', version: current.credentialVersion ?? meta.version };
    }
    let value: string | null = null;
    if (pending) {
      try {
        value = await this.stagedValue(ctx, meta, pending);
      } catch (e) {
        if (await this.goneElsewhere(e, meta.id, pending.id)) return this.movedOn(meta, pending.id);
        throw e;
      }
    }
    if (value === null) pending = undefined;
    const resumed = pending !== undefined;
    if (!pending) {
      pending = await this.prepare(ctx, meta, generateWebhookSecret(), 'automatic');
      try {
        // Push what the store holds: a crash from here on resumes with this same value.
        value = (await this.credentials.get(ctx, pending.stagingCredentialId as string)).value;
      } catch (e) {
        if (await this.goneElsewhere(e, meta.id, pending.id)) return this.movedOn(meta, pending.id);
        throw e;
      }
    }
    if (!(await this.push(ctx, meta, pending, updater, value as string))) return this.movedOn(meta, pending.id);
    const stale = await this.supersededRow(meta.id, pending.id);
    if (stale) {
      // Promoted (or discarded) and then superseded elsewhere while this push was in flight: never promoted here.
      onStalePush(stale);
      return this.movedOn(meta, pending.id);
    }
    return this.promote(ctx, meta, pending, value as string, resumed);
  }

  /**
   * The answer of a rotation that another process went on with after this one lost its lock session (a lost
   * connection frees an advisory lock while its holder goes on): that promotion, else (discarded) IN_PROGRESS.
   */
  private async movedOn(meta: CredentialMetadata, rotationId: string): Promise<WebhookRotationResult> {
    const elsewhere = await this.promotedElsewhere(meta, rotationId);
    if (elsewhere) return elsewhere;
    throw new WebhookRotationInProgressError(meta.id);
  }

  /**
   * A staging read's NOT_FOUND for a row no longer pending: its value went with its promotion (or discard) by another
   * process (see movedOn) — never a 404 naming the internal staging id, nor a row to abandon.
   */
  private async goneElsewhere(e: unknown, credentialId: string, rotationId: string): Promise<boolean> {
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
  private async supersededRow(credentialId: string, rotationId: string): Promise<WebhookSecretVersionEntity | null> {
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
  private async repairStalePush(ctx: OperationContext, credentialId: string, stale: WebhookSecretVersionEntity): Promise<void> {
    const facts: Record<string, unknown> = { rotationId: stale.id, state: stale.state, repaired: false };
    let failure: unknown;
    try {
      await this.lockedWaiting(credentialId, null, async () => {
        const meta = await this.rotatable(ctx, credentialId);
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
        await this.record(ctx, WebhookAuditActions.PUSH_SUPERSEDED, credentialId, AuditResult.FAILURE, facts, 'PUSH_SUPERSEDED');
        if (failure === undefined) return;
        await this.outbox.add({
          name: WebhookSecretEvents.ROTATION_FAILED,
          tenantId: stale.tenantId,
          payload: { credentialId, integrationId: stale.integrationId, connectionId: stale.connectionId, rotationId: stale.id, step: 'repair', error: describeError(failure) },
        });
      })
      .catch((e: unknown) => this.logger.warn(`Could not record the superseded push of webhook rotation ${stale.id}: ${describeError(e)}`));
  }

  /**
   * The value of a pending rotation, or null when its staging credential is gone (deleted by hand):
   * that value cannot be pushed again, so the row is abandoned (retired) and a new rotation starts. The read's error
   * when the row is no longer pending: promoted or discarded by another process (see goneElsewhere), not abandoned here.
   */
  private async stagedValue(ctx: OperationContext, meta: CredentialMetadata, pending: WebhookSecretVersionEntity): Promise<string | null> {
    try {
      return (await this.credentials.get(ctx, pending.stagingCredentialId as string)).value;
    } catch (e) {
      if ((e as { code?: unknown }).code !== CredentialErrorCode.NOT_FOUND) throw e;
      const abandoned = await this.runner.run(async () => {
        if (!(await this.rows.transition(pending.id, WebhookSecretState.PENDING, { state: WebhookSecretState.RETIRED, lastError: 'STAGING_CREDENTIAL_MISSING', updatedAt: this.clock.now() }))) return false;
        await this.record(ctx, WebhookAuditActions.PUSH_FAILED, meta.id, AuditResult.FAILURE, { rotationId: pending.id, step: 'resume', abandoned: true }, 'STAGING_CREDENTIAL_MISSING');
        return true;
      });
      if (!abandoned) throw e;
      return null;
    }
  }

  /**
   * Step 1: the staging credential and the pending row, in one transaction. `staged` (operator):
   * the push counts as started now — the value leaves the vault with this call.
   */
  private async prepare(ctx: OperationContext, meta: CredentialMetadata, value: string, mode: 'automatic' | 'staged'): Promise<WebhookSecretVersionEntity> {
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
          };
          await this.rows.insert(row);
          const action = mode === 'staged' ? WebhookAuditActions.STAGED : WebhookAuditActions.PREPARED;
          await this.record(ctx, action, meta.id, AuditResult.SUCCESS, { rotationId, replacesVersion: meta.version });
        },
      },
    );
    return row as WebhookSecretVersionEntity;
  }

  /**
   * Step 2: install the value at the provider; a failure is recorded and rethrown as UPDATE_FAILED. False, and
   * nothing pushed, when the row is no longer pending (see movedOn): the value may no longer be the newest.
   */
  private async push(ctx: OperationContext, meta: CredentialMetadata, pending: WebhookSecretVersionEntity, updater: WebhookSecretUpdater, value: string): Promise<boolean> {
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
      await this.recordFailure(ctx, meta, pending, 'push', e);
      throw new WebhookSecretUpdateFailedError(meta.id, { cause: e });
    }
    await this.record(ctx, WebhookAuditActions.PUSHED, meta.id, AuditResult.SUCCESS, { rotationId: pending.id, attempt: pending.attempts + 1 });
    return true;
  }

  /** Step 3: the new current version and every row change, in one transaction. */
  private async promote(ctx: OperationContext, meta: CredentialMetadata, pending: WebhookSecretVersionEntity, value: string, resumed: boolean): Promise<WebhookRotationResult> {
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
          await this.record(ctx, WebhookAuditActions.ROTATED, meta.id, AuditResult.SUCCESS, facts);
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
      await this.recordFailure(ctx, meta, pending, 'promote', e);
      throw e;
    }
  }

  /**
   * This rotation, when another process promoted it already: a push that outlived its lock session (a lost
   * connection frees an advisory lock) while another replica resumed and completed the same rotation. Its
   * answer is that promotion's, and nothing is written again — no second version, no failure reported.
   */
  private async promotedElsewhere(meta: CredentialMetadata, rotationId: string): Promise<WebhookRotationResult | null> {
    const rows = await this.rows.history(meta.id);
    const row = rows.find((r) => r.id === rotationId);
    if (!row || row.state === WebhookSecretState.PENDING || row.credentialVersion === null) return null;
    const previous = rows.find((r) => r.credentialVersion === meta.version);
    return { credentialId: meta.id, outcome: 'rotated', rotationId, version: row.credentialVersion, previousVersion: meta.version, previousLiveUntil: previous?.liveUntil ?? undefined, resumed: true };
  }

  /** A failed step: attempts + error name/code on the pending row, an audit row and a rotation_failed event. */
  private async recordFailure(ctx: OperationContext, meta: CredentialMetadata, pending: WebhookSecretVersionEntity, step: 'push' | 'promote', e: unknown): Promise<void> {
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

  private async record(ctx: OperationContext, action: string, resource: string, result: AuditResult, details: Record<string, unknown>, errorCode?: string): Promise<void> {
    await this.audit.record({ action, context: ctx, resource, result, details, ...(errorCode ? { errorCode: errorCode.slice(0, 64) } : {}) });
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
