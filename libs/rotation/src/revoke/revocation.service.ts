import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuditAction, AuditResult, AuditService } from '@app/audit';
import { Clock, DistributedLock, Outbox, TransactionRunner, prefixedLockKey, type OperationContext } from '@app/common';
import { CredentialConflictError, CredentialNotFoundError, CredentialsService, CredentialStatus, CredentialType, type CredentialMetadata } from '@app/credentials';
import { CredentialNotRevokedError, NothingToRevokeError, RotationValidationError } from '../errors/rotation.errors';
import { auditRefusal } from '../internal/audit-failure';
import { assertContext, checkedCredentialId, assertIdentifier, assertReason } from '../internal/validation';
import { ROTATION_CLOCK, ROTATION_LOCK } from '../rotation.constants';
import { RotationEvents } from '../rotation.events';
import { RotationService } from '../rotation.service';
import { WebhookSecretRotator } from '../webhooks/webhook-secret-rotator';
import { WEBHOOK_STAGING_TAG } from '../webhooks/webhook-secrets.tokens';
import { NOTIFICATION_WEBHOOK_SECRET_CONNECTION, NOTIFICATION_WEBHOOK_SECRET_INTEGRATION } from '../notifications/notification.constants';

export type RevokeSeverity = 'low' | 'medium' | 'high' | 'critical';
export const REVOKE_SEVERITIES: readonly RevokeSeverity[] = ['low', 'medium', 'high', 'critical'];

/** What to revoke: one credential, every credential of a connection or an integration, or the whole tenant. */
export type RevokeTarget = { credentialId: string } | { integrationId: string; connectionId?: string } | { tenant: true };

export interface RevokeOptions {
  /** Why (required): recorded in the audit row, the history and the event. */
  reason: string;
  /** @default 'critical' */
  severity?: RevokeSeverity;
  /**
   * Compare-and-set, with a `{ credentialId }` target only (`VALIDATION` otherwise): the credential's `rowVersion` the
   * caller last read. Another one (it changed since, or was revoked meanwhile) is `CONFLICT` (2003), audited as a
   * refused revoke, nothing changed. The host's `PATCH /v1/credentials/{id}` to `status: revoked` passes its own.
   */
  expectedVersion?: number;
}

export interface RevokeResult {
  /** Credentials revoked by this call (or finished: their vault versions disabled again). */
  revoked: string[];
  /** Key Vault secret versions disabled. */
  vaultVersionsDisabled: number;
  /** Credentials revoked whose vault versions could not all be disabled yet: call again to finish. */
  vaultFailures: string[];
  /**
   * Credentials of a connection, integration or tenant target that another request deleted after this call listed
   * them, before their turn: nothing left to revoke (their values are gone with them), so neither revoked nor refused.
   */
  gone: string[];
}

/** How long an emergency revoke waits for a rotation of the same credential in flight. */
const REVOKE_LOCK_TIMEOUT_MS = 30_000;

/**
 * Emergency revoke. Per credential: ONE transaction sets status `revoked` with its audit row (action
 * `revoke`, `critical: true`), the `credential.revoked` outbox event and the history row — from the
 * commit on, every read is refused, cache hits included (the commit purges the cache entry). Then its
 * Key Vault secret versions are disabled (CredentialsService.revoke); a vault failure leaves the
 * credential revoked and is reported, and revoking again finishes it. Envelope values need only the status.
 */
@Injectable()
export class RevocationService {
  private readonly logger = new Logger(RevocationService.name);
  private revocations = 0;

  constructor(
    private readonly credentials: CredentialsService,
    private readonly rotation: RotationService,
    private readonly runner: TransactionRunner,
    private readonly outbox: Outbox,
    private readonly audit: AuditService,
    private readonly webhooks: WebhookSecretRotator,
    @Inject(ROTATION_LOCK) private readonly lock: DistributedLock,
    @Inject(ROTATION_CLOCK) private readonly clock: Clock,
  ) {}

  /** Credentials revoked by this process (for metrics). */
  revocationCount(): number {
    return this.revocations;
  }

  async revoke(ctx: OperationContext, target: RevokeTarget, options: RevokeOptions): Promise<RevokeResult> {
    assertContext(ctx);
    const reason = assertReason(options?.reason, true)!;
    const severity = options.severity ?? 'critical';
    if (!REVOKE_SEVERITIES.includes(severity)) throw new RotationValidationError(`severity must be one of ${REVOKE_SEVERITIES.join(', ')}`, 'severity');
    const { expectedVersion } = options;
    if (expectedVersion !== undefined) {
      if (!Number.isSafeInteger(expectedVersion) || expectedVersion < 1) throw new RotationValidationError('expectedVersion must be a positive integer', 'expectedVersion');
      if (!(target && 'credentialId' in target)) throw new RotationValidationError('expectedVersion needs a { credentialId } target', 'expectedVersion');
    }
    // Looked up before any lock (keyed by the id alone): another tenant's guessed id never waits on, nor holds, one.
    const targets = await this.resolve(ctx, target);
    // A credential of a listed target deleted before its turn is not the caller's refused request: it is gone.
    const listed = !('credentialId' in target);
    const result: RevokeResult = { revoked: [], vaultVersionsDisabled: 0, vaultFailures: [], gone: [] };
    for (const meta of targets) {
      await this.lock.run(prefixedLockKey('credentialRotation', meta.id), () => this.revokeOne(ctx, meta, { reason, severity, expectedVersion }, result, listed), {
        timeoutMs: REVOKE_LOCK_TIMEOUT_MS,
      });
    }
    const gone = result.gone.length ? `, ${result.gone.length} deleted meanwhile` : '';
    this.logger.warn(`revoked ${result.revoked.length} credential(s) of tenant ${ctx.tenantId} (severity ${severity})${gone}`);
    return result;
  }

  /** Explicit, audited undo of a revoke: the vault versions are enabled again, then the credential is active. */
  async unrevoke(ctx: OperationContext, credentialId: string, options: { reason: string }): Promise<CredentialMetadata> {
    assertContext(ctx);
    credentialId = checkedCredentialId(credentialId);
    const reason = assertReason(options?.reason, true)!;
    // Looked up before the lock (keyed by the id alone): another tenant's guessed id never waits on, nor holds, it.
    await this.found(ctx, credentialId, AuditAction.UNREVOKE);
    return this.lock.run(
      prefixedLockKey('credentialRotation', credentialId),
      async () => {
        const before = await this.found(ctx, credentialId, AuditAction.UNREVOKE);
        if (before.status !== CredentialStatus.REVOKED) return this.refuseUnrevoke(ctx, credentialId, reason, before.status);
        // The vault versions are enabled first (a vault failure leaves the credential revoked: the safe side),
        // then the status, audit, outbox and history rows commit in one transaction.
        let lifted = false;
        const { metadata } = await this.credentials.unrevoke(ctx, credentialId, {
          inCommit: async ({ metadata: m, vaultVersions }) => {
            lifted = true;
            await this.audit.record({ action: AuditAction.UNREVOKE, context: ctx, resource: credentialId, result: AuditResult.SUCCESS, details: { reason, vaultVersions, critical: true } });
            await this.outbox.add({ name: RotationEvents.UNREVOKED, tenantId: ctx.tenantId, payload: { ...this.payload(ctx, m), reason } });
            await this.rotation.record(ctx, { credentialId, action: 'unrevoke', method: 'unrevoke', fromVersion: m.version, toVersion: m.version, reason });
            // A webhook secret revoked by a bare status change whose event is not dispatched yet still has the successor
            // staged before the revoke (a revoked secret stages none): it goes now, as this service's revoke discards it.
            if (m.type === CredentialType.WEBHOOK_SECRET) await this.webhooks.discardOnRevoke(ctx, m);
          },
        });
        // A rotation outside this lock (the credentials route, another replica) made it active first: nothing was lifted.
        if (!lifted) return this.refuseUnrevoke(ctx, credentialId, reason, metadata.status);
        return metadata;
      },
      { timeoutMs: REVOKE_LOCK_TIMEOUT_MS },
    );
  }

  /**
   * The caller's credential. An id its tenant does not have (never stored, deleted, another tenant's) is NOT_FOUND,
   * audited as a refused `action` of it (denied), as the Credentials lib audits one — not only answered.
   */
  private async found(ctx: OperationContext, credentialId: string, action: AuditAction.REVOKE | AuditAction.UNREVOKE): Promise<CredentialMetadata> {
    try {
      return await this.credentials.getMetadata(ctx, credentialId);
    } catch (e) {
      if (e instanceof CredentialNotFoundError) await auditRefusal(this.audit, this.logger, { action, ctx, credentialId, error: e });
      throw e;
    }
  }

  /**
   * NOT_REVOKED, audited as what was asked (`unrevoke`, failure, the code answered) whether the credential was
   * active before or a rotation got there first: the trail does not depend on the timing. Best effort, as the
   * credentials lib's failure rows: the refusal stands if its row cannot be written.
   */
  private async refuseUnrevoke(ctx: OperationContext, credentialId: string, reason: string, status: CredentialStatus): Promise<never> {
    const refused = new CredentialNotRevokedError(credentialId);
    await auditRefusal(this.audit, this.logger, { action: AuditAction.UNREVOKE, ctx, credentialId, error: refused, details: { reason, status, critical: true } });
    throw refused;
  }

  /**
   * `listed`: `meta` came from listing a connection, integration or tenant; one deleted since is `gone`, unaudited.
   * A `{ credentialId }` deleted while this waited on the lock is NOT_FOUND, audited as the caller's refused revoke.
   */
  private async revokeOne(
    ctx: OperationContext,
    meta: CredentialMetadata,
    { reason, severity, expectedVersion }: Required<Omit<RevokeOptions, 'expectedVersion'>> & Pick<RevokeOptions, 'expectedVersion'>,
    out: RevokeResult,
    listed: boolean,
  ): Promise<void> {
    const gone = (e: unknown) => listed && e instanceof CredentialNotFoundError && (out.gone.push(meta.id), true);
    let current: CredentialMetadata;
    try {
      current = listed ? await this.credentials.getMetadata(ctx, meta.id) : await this.found(ctx, meta.id, AuditAction.REVOKE);
    } catch (e) {
      if (gone(e)) return;
      throw e;
    }
    // The caller's compare-and-set, before anything is written (also when it was revoked meanwhile: not what it read).
    if (expectedVersion !== undefined && expectedVersion !== current.rowVersion) {
      const stale = new CredentialConflictError(meta.id, expectedVersion, current.rowVersion);
      await auditRefusal(this.audit, this.logger, { action: AuditAction.REVOKE, ctx, credentialId: meta.id, error: stale, details: { reason, severity, critical: true, version: current.version } });
      throw stale;
    }
    // A webhook secret's staged successor goes with it (presumed exposed with it): discarded in the status change, or
    // on a revoke again (one revoked before revokes discarded it).
    const discardStaged = () => (current.type === CredentialType.WEBHOOK_SECRET ? this.webhooks.discardOnRevoke(ctx, current) : Promise.resolve());
    if (current.status === CredentialStatus.REVOKED) await discardStaged();
    else {
      try {
        await this.runner.run(async () => {
          // expectedVersion: a write outside the rotation lock (the credentials route) since the look above is a CONFLICT too.
          await this.credentials.updateMetadata(ctx, meta.id, { status: CredentialStatus.REVOKED, expectedVersion });
          await this.recordRevoke(ctx, current, reason, severity);
          await discardStaged();
        });
      } catch (e) {
        // Deleted between the look-up and the status change (a delete takes no rotation lock): nothing committed.
        if (gone(e)) return;
        throw e;
      }
      this.revocations++;
    }
    out.revoked.push(meta.id);
    try {
      // A rotation outside the lock (the credentials route, another replica) that made it active again is revoked a
      // second time, in its own status change: recorded as a revoke as well — by whom, why, which version, and that
      // it came again — not only as the metadata update.
      const again = (m: CredentialMetadata) => this.recordRevoke(ctx, m, reason, severity, current.version);
      const { vaultVersions } = await this.credentials.revoke(ctx, meta.id, { inCommit: again });
      out.vaultVersionsDisabled += vaultVersions;
    } catch (e) {
      out.vaultFailures.push(meta.id);
      this.logger.error(`credential ${meta.id} (tenant ${ctx.tenantId}) is revoked but its Key Vault versions are not all disabled yet: ${(e as Error).name}`);
    }
  }

  /**
   * The audit row, `credential.revoked` event and history row of one status change to revoked. `revokedVersion`: the
   * version the first one revoked, when this one came again (a rotation made it active: a version past it).
   */
  private async recordRevoke(ctx: OperationContext, m: CredentialMetadata, reason: string, severity: RevokeSeverity, revokedVersion?: number): Promise<void> {
    const repeat: Record<string, string | boolean | number> =
      revokedVersion === undefined ? {} : { again: true, cause: m.version > revokedVersion ? 'rotated_during_revoke' : 'active_again_during_revoke', revokedVersion };
    await this.audit.record({ action: AuditAction.REVOKE, context: ctx, resource: m.id, result: AuditResult.SUCCESS, details: { reason, severity, critical: true, version: m.version, ...repeat } });
    await this.outbox.add({ name: RotationEvents.REVOKED, tenantId: ctx.tenantId, payload: { ...this.payload(ctx, m), reason, severity, ...repeat } });
    await this.rotation.record(ctx, { credentialId: m.id, action: 'revoke', method: 'revoke', fromVersion: m.version, toVersion: m.version, reason, severity });
  }

  private async resolve(ctx: OperationContext, target: RevokeTarget): Promise<CredentialMetadata[]> {
    if (target && 'credentialId' in target) {
      const credentialId = checkedCredentialId(target.credentialId);
      // An id the caller's tenant does not have (never stored, deleted, another tenant's): audited, not only answered.
      return [await this.found(ctx, credentialId, AuditAction.REVOKE)];
    }
    let filter: { integrationId?: string; connectionId?: string };
    if (target && 'integrationId' in target) {
      assertIdentifier(target.integrationId, 'integrationId');
      if (target.connectionId !== undefined) assertIdentifier(target.connectionId, 'connectionId');
      filter = { integrationId: target.integrationId, connectionId: target.connectionId };
    } else if (target && 'tenant' in target && target.tenant === true) {
      filter = {};
    } else {
      throw new RotationValidationError('target must be { credentialId }, { integrationId, connectionId? } or { tenant: true }', 'target');
    }
    const out: CredentialMetadata[] = [];
    let cursor: string | undefined;
    do {
      // Internal credentials too: a pending rotation value or a staged secret is a live value at the provider as well.
      const page = await this.credentials.list(ctx, { ...filter, includeInternal: true, limit: 200, cursor });
      // A tenant-wide revoke leaves the notifications' own signing secret: revoked, it would silence the
      // very `credential.revoked` notices of this revoke (the webhook could not be signed). Named, it is revoked.
      out.push(...(filter.integrationId === undefined ? page.items.filter((m) => !isNotificationSigningSecret(m)) : page.items));
      cursor = page.nextCursor;
    } while (cursor);
    if (out.length === 0) throw new NothingToRevokeError(JSON.stringify(filter));
    // A listed webhook secret's staged successor is discarded by its revoke (revokeOne), not revoked on its own.
    const secrets = new Set(out.filter((m) => m.type === CredentialType.WEBHOOK_SECRET).map((m) => m.id));
    return out.filter((m) => !secrets.has(m.tags[WEBHOOK_STAGING_TAG] ?? ''));
  }

  private payload(ctx: OperationContext, m: CredentialMetadata) {
    return { credentialId: m.id, tenantId: m.tenantId, integrationId: m.integrationId, connectionId: m.connectionId, type: m.type, version: m.version, actorId: ctx.actor.id, occurredAt: this.clock.now().toISOString() };
  }
}

/** The tenant's outbound-webhook signing secret, which the notifications store among its credentials. */
function isNotificationSigningSecret(m: CredentialMetadata): boolean {
  return m.integrationId === NOTIFICATION_WEBHOOK_SECRET_INTEGRATION && m.connectionId === NOTIFICATION_WEBHOOK_SECRET_CONNECTION;
}
