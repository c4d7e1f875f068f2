import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { AuditAction, type AuditActionName, auditErrorCode, AuditResult, AuditService } from '@app/audit';
import { Clock, DistributedLock, isVaultRefusal, Outbox, TransactionRunner, prefixedLockKey, type OperationContext } from '@app/common';
import { assertChangeableCredential, CredentialConflictError, CredentialNotFoundError, CredentialsService, CredentialType, type CredentialMetadata } from '@app/credentials';
import { NoRotationHandlerError, RotationFailedError, RotationInProgressError, RotationValidationError } from './errors/rotation.errors';
import type { MintedValue } from './handlers/rotation-handler';
import { RotationHandlerRegistry } from './handlers/rotation-handler.registry';
import { RotationHistoryRepository } from './history/rotation-history.repository';
import { PendingRotationValues, type PendingRotation } from './pending/pending-rotation-values';
import type { RotationHistoryEntry } from './history/rotation-history';
import { auditRefusal } from './internal/audit-failure';
import { assertContext, checkedCredentialId, assertReason } from './internal/validation';
import { ROTATION_CLOCK, ROTATION_LOCK } from './rotation.constants';
import { RotationEvents } from './rotation.events';
import { WebhookSecretsService } from './webhooks/webhook-secrets.service';

export interface RotateCredentialOptions {
  /** The new value. Absent: the credential's RotationHandler mints one, else its type's generator. */
  value?: string;
  /** Expiry of the new value (a handler's own expiry wins). */
  expiresAt?: Date | null;
  /** Why, recorded in the history and the audit row. */
  reason?: string;
  /** Compare-and-set on the credential's `rowVersion`. */
  expectedVersion?: number;
}

export interface RotationOutcome {
  metadata: CredentialMetadata;
  fromVersion: number;
  /** How the value was obtained; `webhook`: the webhooks part's two-phase rotation (updater, overlap window). */
  method: 'given' | 'handler' | 'generator' | 'webhook';
}

/**
 * Manual and automatic rotation through CredentialsService: one rotation of a credential at a time
 * across replicas (`rotation:<id>` lock), the value from the caller, a RotationHandler or a generator,
 * and the history row committed with the new version. A handler failure leaves the previous version
 * current. Rollback goes through here too, so it has a history row.
 */
@Injectable()
export class RotationService {
  private readonly logger = new Logger(RotationService.name);
  private rotations = 0;
  /**
   * Errors of a rotation already audited where they arose (a refusal here, the Credentials lib's write): `reportFailure`
   * writes the row of any other, so a failed automatic rotation has exactly one.
   */
  private readonly audited = new WeakSet<object>();

  constructor(
    private readonly credentials: CredentialsService,
    private readonly registry: RotationHandlerRegistry,
    private readonly history: RotationHistoryRepository,
    private readonly runner: TransactionRunner,
    private readonly outbox: Outbox,
    private readonly audit: AuditService,
    @Inject(ROTATION_LOCK) private readonly lock: DistributedLock,
    @Inject(ROTATION_CLOCK) private readonly clock: Clock,
    private readonly pending: PendingRotationValues,
    @Optional() private readonly webhooks?: WebhookSecretsService,
  ) {}

  /** Rotations performed by this process (for metrics). */
  rotationCount(): number {
    return this.rotations;
  }

  /** Whether a new value can be made without the caller: a handler or a generator exists. */
  canMint(meta: Pick<CredentialMetadata, 'integrationId' | 'type'>): boolean {
    return !!(this.registry.handlerFor(meta.integrationId, meta.type) ?? this.registry.generatorFor(meta.type));
  }

  /**
   * `conflictRetried` (this lib's rotation check): a stale `expectedVersion` is the caller's own guard, which it handles
   * (rotates as the credential is now, or not at all), so it is not audited as a refused rotation. `byJob` (the
   * rotation check): the lock another holds (IN_PROGRESS) and an id deleted since the scan (NOT_FOUND) are the job's
   * bookkeeping — it leaves the credential to its next run — not refusals audited toward its actor's thresholds.
   */
  async rotate(ctx: OperationContext, credentialId: string, options: RotateCredentialOptions = {}, { conflictRetried = false, byJob = false } = {}): Promise<RotationOutcome> {
    assertContext(ctx);
    credentialId = checkedCredentialId(credentialId);
    const reason = assertReason(options.reason, false);
    if (options.value !== undefined && typeof options.value !== 'string') throw new RotationValidationError('value must be a string', 'value');
    if (options.value === undefined && this.webhooks) {
      const meta = await this.load(ctx, AuditAction.ROTATE, credentialId, !byJob);
      // A webhook secret without a given value rotates in two phases (pushed to the provider, old one
      // live for the overlap window); the webhooks part takes the same per-credential lock itself.
      if (meta.type === CredentialType.WEBHOOK_SECRET) return this.rotateWebhookSecret(ctx, meta, reason);
    }
    return this.exclusive(ctx, AuditAction.ROTATE, credentialId, !byJob, async () => {
      const before = await this.load(ctx, AuditAction.ROTATE, credentialId, !byJob);
      // Refused or failed before the Credentials lib's write (which audits its own): the trail still shows the rotate.
      const { pending, kept, minted, method, keeping } = await this.prepare(ctx, before, options, reason).catch(async (e: unknown) => {
        if (conflictRetried && e instanceof CredentialConflictError) throw e;
        if (await auditRefusal(this.audit, this.logger, { action: AuditAction.ROTATE, ctx, credentialId, error: e, details: { version: before.version } })) this.wasAudited(e);
        throw e;
      });
      let metadata: CredentialMetadata;
      try {
        // The history row commits in the rotate's own transaction, which opens only after the value is in
        // the vault: a transaction wrapped around the call would stay open across the vault write.
        metadata = await this.credentials.rotate(ctx, credentialId, minted.value, {
          expectedVersion: options.expectedVersion,
          expiresAt: minted.expiresAt !== undefined ? minted.expiresAt : options.expiresAt,
          inCommit: (next) => this.record(ctx, { credentialId, action: 'rotate', method, fromVersion: before.version, toVersion: next.version, reason }),
        });
      } catch (e) {
        this.wasAudited(e); // by the Credentials lib's write (best effort there: a row it could not write is logged)
        if (method === 'handler' && !kept) await this.pending.afterFailedWrite(ctx, before, keeping, e);
        throw e;
      }
      if (pending) await this.pending.drop(ctx, pending); // written now, or superseded by a given value
      if (keeping) await this.pending.drop(ctx, keeping); // a leftover (a crash before this) is stale: dropped next time
      this.rotations++;
      this.logger.log(`rotated credential ${credentialId} (tenant ${ctx.tenantId}) to version ${metadata.version} (${method})`);
      return { metadata, fromVersion: before.version, method };
    });
  }

  /** Everything of a rotation before its write: the refusals, then the value (given, kept from before, or minted and kept). */
  private async prepare(ctx: OperationContext, before: CredentialMetadata, options: RotateCredentialOptions, reason: string | null) {
    // The lib's own rows (a pending value, a staged webhook secret) take no rotation: the Credentials lib would refuse
    // the write, but only after a handler minted a value (a live key at the provider nobody owns).
    assertChangeableCredential(before);
    // A stale expectedVersion is refused before a value is minted: a handler may already change it at the provider.
    if (options.expectedVersion !== undefined && options.expectedVersion !== before.rowVersion) {
      throw new CredentialConflictError(before.id, options.expectedVersion, before.rowVersion);
    }
    const pending = await this.pending.find(ctx, before);
    // A value a handler minted earlier, not committed (its write failed, or the process died): the provider may hold it as live, so it is written, not minted anew.
    const kept = pending && options.value === undefined ? await this.pending.take(ctx, before, pending) : undefined;
    const { minted, method } = kept ? { minted: kept, method: 'handler' as const } : await this.newValue(before, options, reason ?? 'manual');
    // Crash-safe: a freshly minted value is durable before its write and dropped after the commit (one envelope
    // write and delete per handler rotation), so neither a crash nor a failed write in between loses it.
    const keeping = method === 'handler' && !kept ? await this.pending.keep(ctx, before, minted) : undefined;
    if (keeping) await this.pending.discardIfGone(ctx, before, keeping); // deleted or revoked meanwhile: nothing written
    return { pending, kept, minted, method, keeping };
  }

  /** The credential's pending rotation value (a minted value not yet committed: its write failed, or a crash), if any: references only. */
  async pendingRotation(ctx: OperationContext, credentialId: string): Promise<PendingRotation | null> {
    assertContext(ctx);
    credentialId = checkedCredentialId(credentialId);
    const meta = await this.credentials.getMetadata(ctx, credentialId);
    const pending = await this.pending.find(ctx, meta);
    return pending ? this.pending.toReport(meta, pending) : null;
  }

  /** Pending rotation values of every tenant (metrics; no tenant owns the count). */
  pendingRotationCount(): Promise<number> {
    return this.pending.countAcrossTenants();
  }

  private async rotateWebhookSecret(ctx: OperationContext, before: CredentialMetadata, reason: string | null): Promise<RotationOutcome> {
    const result = await this.webhooks!.rotate(ctx, before.id);
    const metadata = await this.credentials.getMetadata(ctx, before.id);
    await this.runner.run(() => this.record(ctx, { credentialId: before.id, action: 'rotate', method: 'webhook', fromVersion: result.previousVersion ?? before.version, toVersion: result.version, reason }));
    this.rotations++;
    return { metadata, fromVersion: result.previousVersion ?? before.version, method: 'webhook' };
  }

  /** Makes an older version current again (a new version pointing at it), with a history row. */
  async rollback(ctx: OperationContext, credentialId: string, toVersion: number, options: { reason?: string; expectedVersion?: number } = {}): Promise<CredentialMetadata> {
    assertContext(ctx);
    credentialId = checkedCredentialId(credentialId);
    const reason = assertReason(options.reason, false);
    return this.exclusive(ctx, AuditAction.ROLLBACK, credentialId, true, async () => {
      const before = await this.load(ctx, AuditAction.ROLLBACK, credentialId);
      return this.credentials.rollback(ctx, credentialId, toVersion, {
        expectedVersion: options.expectedVersion,
        inCommit: (next) => this.record(ctx, { credentialId, action: 'rollback', method: 'rollback', fromVersion: before.version, toVersion: next.version, reason }),
      });
    });
  }

  /** A credential's rotation history, newest first. */
  async historyOf(ctx: OperationContext, credentialId: string, limit = 100): Promise<RotationHistoryEntry[]> {
    assertContext(ctx);
    credentialId = checkedCredentialId(credentialId);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new RotationValidationError('limit must be an integer in 1..1000', 'limit');
    await this.credentials.getMetadata(ctx, credentialId); // another tenant's id reads as missing
    const rows = await this.history.list(ctx.tenantId, credentialId, limit);
    return rows.map((r) => ({
      id: r.id,
      credentialId: r.credentialId,
      action: r.action as RotationHistoryEntry['action'],
      method: r.method,
      fromVersion: r.fromVersion == null ? null : Number(r.fromVersion),
      toVersion: r.toVersion == null ? null : Number(r.toVersion),
      actor: r.actor,
      reason: r.reason,
      severity: r.severity,
      at: r.createdAt,
    }));
  }

  /** A history row in the ambient transaction (the revoke service records its own with it). */
  async record(
    ctx: OperationContext,
    e: { credentialId: string; action: RotationHistoryEntry['action']; method: string; fromVersion: number | null; toVersion: number | null; reason: string | null; severity?: string },
  ): Promise<void> {
    await this.history.insert({ id: randomUUID(), tenantId: ctx.tenantId, actor: ctx.actor.id, createdAt: this.clock.now(), severity: e.severity ?? null, ...e });
  }

  /**
   * An automatic rotation that failed, announced (`credential.rotation_failed`); the previous value stays current. Its
   * audit row is the rotation's own where it failed (a refusal here, or the Credentials lib's write), else — an error
   * no step audits, such as the credential's lock not to be had — written here (`automatic`): one row either way.
   */
  async reportFailure(ctx: OperationContext, meta: CredentialMetadata, error: unknown): Promise<void> {
    await this.runner.run(async () => {
      if (!(typeof error === 'object' && error !== null && this.audited.has(error))) {
        await this.audit.record({ action: AuditAction.ROTATE, context: ctx, resource: meta.id, result: AuditResult.FAILURE, errorCode: auditErrorCode(error), details: { automatic: true, version: meta.version } });
      }
      await this.outbox.add({
        name: RotationEvents.ROTATION_FAILED,
        tenantId: meta.tenantId,
        payload: {
          credentialId: meta.id, tenantId: meta.tenantId, integrationId: meta.integrationId, connectionId: meta.connectionId, type: meta.type, version: meta.version, error: (error as Error)?.name ?? 'Error',
          action: isVaultRefusal(error)
            ? "Grant the host's Key Vault identity the permission it lacks (access policy or RBAC role); the previous value stays current and the next run retries."
            : 'Check the rotation handler of the integration; the previous value stays current and the next run retries.',
        },
      });
    });
  }

  private async newValue(meta: CredentialMetadata, options: RotateCredentialOptions, reason: string): Promise<{ minted: MintedValue; method: RotationOutcome['method'] }> {
    if (options.value !== undefined) return { minted: { value: options.value }, method: 'given' };
    const handler = this.registry.handlerFor(meta.integrationId, meta.type);
    if (handler) {
      try {
        const minted = await handler.mint({ tenantId: meta.tenantId, credentialId: meta.id, integrationId: meta.integrationId, connectionId: meta.connectionId, type: meta.type, fromVersion: meta.version, reason });
        if (!minted || typeof minted.value !== 'string') throw new TypeError('the handler returned no value');
        return { minted, method: 'handler' };
      } catch (e) {
        throw new RotationFailedError(meta.id, { cause: e });
      }
    }
    const generate = this.registry.generatorFor(meta.type);
    if (generate) return { minted: { value: generate() }, method: 'generator' };
    throw new NoRotationHandlerError(meta.id, meta.integrationId, meta.type);
  }

  /** `e`, remembered as audited (see `audited`). */
  private wasAudited<E>(e: E): E {
    if (typeof e === 'object' && e !== null) this.audited.add(e);
    return e;
  }

  /**
   * The credential a rotation or rollback changes. An id the caller's tenant does not have is refused as the
   * Credentials lib refuses a change of one: audited (denied, NOT_FOUND), not only answered (unless `audited` is false).
   */
  private async load(ctx: OperationContext, action: AuditActionName, credentialId: string, audited = true): Promise<CredentialMetadata> {
    try {
      return await this.credentials.getMetadata(ctx, credentialId);
    } catch (e) {
      if (audited && e instanceof CredentialNotFoundError) {
        if (await auditRefusal(this.audit, this.logger, { action, ctx, credentialId, error: e })) this.wasAudited(e);
      }
      throw e;
    }
  }

  /**
   * One rotation or rollback of a credential at a time, across replicas. A refused one is audited as any refused
   * change. The lock is keyed by the id alone, so the id is looked up in the caller's tenant first: one it does not
   * have is NOT_FOUND at once — another tenant never takes the lock, nor learns that the credential is being rotated.
   */
  private async exclusive<T>(ctx: OperationContext, action: AuditActionName, credentialId: string, audited: boolean, work: () => Promise<T>): Promise<T> {
    await this.load(ctx, action, credentialId, audited);
    const result = await this.lock.tryRun(prefixedLockKey('credentialRotation', credentialId), work);
    if (result.acquired) return result.value;
    const meta = await this.load(ctx, action, credentialId, audited);
    const refused = new RotationInProgressError(credentialId);
    if (audited && (await auditRefusal(this.audit, this.logger, { action, ctx, credentialId, error: refused, details: { version: meta.version } }))) this.wasAudited(refused);
    throw refused;
  }
}
