import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { AuditAction } from '@app/audit';
import { Clock, describeError, type OperationContext, OutboxDeferredError, type OutboxEvent, OutboxHandlerRegistrations } from '@app/common';
import { KeyVaultProvider } from '@app/key-vault';
import { CredentialCache } from './cache/credential-cache';
import { CredentialStatus, ValueStoreKind } from './credential-type';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS, VAULT_VALUE_REVOKE_EVENT } from './credentials.constants';
import type { ResolvedCredentialsOptions } from './credentials.options';
import type { CommitOptions, CredentialMetadata, RevokeValueResult } from './credential.types';
import type { CredentialEntity } from './entities/credential.entity';
import type { CredentialVersionEntity } from './entities/credential-version.entity';
import { CredentialChangeCommitter } from './credential-change.committer';
import { CredentialWriter } from './credential.writer';
import { CredentialConflictError, CredentialRevokeIncompleteError } from './errors/credential-errors';
import { cacheKey, ownerOf, toMetadata } from './internal/credential-view';
import { assertChangeable, loadLive } from './internal/guards';
import { CredentialRepository } from './persistence/credential.repository';
import { CredentialsPersistence } from './persistence/credentials-persistence';
import { CredentialVersionRepository, lastRevoked } from './persistence/credential-version.repository';
import { undeliveredEvents, VaultOutageLog, vaultUnreachable } from './stores/vault-outage';
import { CREDENTIAL_TAG, VaultValueStore } from './stores/vault-value-store';

/** Attempts of an unrevoke whose status change met a concurrent write of the credential. */
const UNREVOKE_ATTEMPTS = 3;
/** Looks at the row a revoke takes while writes of the credential keep committing (a status change, or the vault and a fence). */
const REVOKE_PASSES = 10;

/**
 * Emergency revoke of one credential's value: the status becomes `revoked` first (reads are refused
 * from then on, cache hits included: the commit purges the cache entry), then every Key Vault secret
 * version the credential ever wrote is disabled, so the value is not readable at the vault either.
 * Envelope values need no more than the status. The versions revoked are marked (`revokedAt`, in the
 * status change's transaction) and never served again, even after a rotation made the credential active.
 * Revoke also disables the versions no metadata references — orphans of writes that crashed between the vault write
 * and the commit — found by listing the credential's secrets: no version of a revoked credential stays enabled.
 * A write in flight meanwhile may hold such a version: the revoke ends with a fence (row_version moved by
 * compare-and-set), so that write commits nothing; one that committed first (a rotation, active again) is revoked too.
 * Un-revoke of a revoked credential re-enables the versions its last revoke withdrew, then makes it
 * active; of any other credential it does nothing. Both are idempotent: a failure half way is finished
 * by calling again — and a revoke's vault side by the outbox too (its event is in the status change's
 * transaction): after a process died, or the vault failed, between the status and the last version.
 */
@Injectable()
export class CredentialRevoker implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('CredentialRevoker');
  private readonly outboxRegistrations = new OutboxHandlerRegistrations();
  /** The completion events' failures while Key Vault is unreachable: said once per outage, not at each attempt. */
  private readonly unreachable = new VaultOutageLog(
    this.logger,
    {
      waiting: (n) => `${n === undefined ? 'revokes' : `${n} revoke${n === 1 ? '' : 's'}`} wait for their Key Vault versions to be disabled`,
      resumed: 'revoked credentials\' Key Vault versions are disabled again',
    },
    () => undeliveredEvents(this.persistence, VAULT_VALUE_REVOKE_EVENT),
  );

  constructor(
    private readonly writer: CredentialWriter,
    private readonly committer: CredentialChangeCommitter,
    private readonly rows: CredentialRepository,
    private readonly versions: CredentialVersionRepository,
    private readonly keyVault: KeyVaultProvider,
    private readonly vaultStore: VaultValueStore,
    private readonly cache: CredentialCache,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
    private readonly persistence: CredentialsPersistence,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) private readonly options: ResolvedCredentialsOptions,
  ) {}

  onModuleInit(): void {
    // Also on replicas that never revoke: they may dispatch another replica's events.
    this.outboxRegistrations.register(this.persistence.handlers, VAULT_VALUE_REVOKE_EVENT, (event) => this.finishRevoke(event));
  }

  onModuleDestroy(): void {
    this.outboxRegistrations.unregisterAll();
  }

  /**
   * `options.inCommit` runs in the transaction of each status change to `revoked` this revoke makes: none when the
   * credential was revoked already, one more each time a write (a rotation) made it active again meanwhile.
   */
  async revoke(ctx: OperationContext, id: string, options: CommitOptions = {}): Promise<RevokeValueResult> {
    // A failure is audited as the revoke's, unless its status change (an audited metadata update) wrote the row.
    return this.committer.audited(AuditAction.REVOKE, ctx, id, () => this.revokeOnce(ctx, id, options));
  }

  private async revokeOnce(ctx: OperationContext, id: string, options: CommitOptions): Promise<RevokeValueResult> {
    const seen = new Set<string>();
    for (let pass = 1; ; pass++) {
      const row = await loadLive(this.rows, ctx.tenantId, id);
      if (pass > REVOKE_PASSES) {
        // Writes kept committing: revoked, but a version of one that committed may still be enabled (not a concurrency
        // miss of the caller's: it set no precondition). Calling again finishes the revoke.
        throw new CredentialRevokeIncompleteError(id);
      }
      // Not revoked (yet, or a write made it active since the last look): the status first, then look again.
      if (row.status !== CredentialStatus.REVOKED) {
        await this.writer.updateMetadata(ctx, id, { status: CredentialStatus.REVOKED, inCommit: options.inCommit });
        continue;
      }
      // The fence: row_version moves only if nothing committed since `row` was read. Every write that read the row
      // before it (one whose value the listing may have disabled) then loses its compare-and-set and commits nothing;
      // a write that committed meanwhile (a rotation: active again) is revoked too, on the next pass.
      const fenced: CredentialEntity = { ...row, rowVersion: row.rowVersion + 1 };
      const fence = () => this.rows.compareAndSet(row, fenced);
      try {
        await this.disableVaultVersions(ctx, id, row, seen);
      } catch (e) {
        // Half done (calling again finishes it): still, no write in flight commits a version this pass disabled.
        await fence().catch(() => undefined);
        throw e;
      }
      if (await fence()) {
        await this.evictEverywhere(ctx, id);
        return { metadata: toMetadata(fenced, this.clock.nowMs()), vaultVersions: seen.size };
      }
    }
  }

  /**
   * The outbox's delivery of a revoke's vault side, on any replica, once the revoke's own process had its grace: a
   * credential still revoked with a version of it enabled at the vault (that process died, or the vault failed it) is
   * revoked again — disabled and fenced, no second audit row or event. One the revoke finished is left alone (its
   * rowVersion is not moved). One rotated since (active again, as after a leak) keeps the versions the revoke marked
   * withdrawn at the vault too; one un-revoked has them enabled again by design, one deleted has its own vault side.
   */
  private async finishRevoke(event: OutboxEvent): Promise<void> {
    const id = event.payload.credentialId;
    if (!event.tenantId || typeof id !== 'string') return;
    // Real time, as the outbox redelivers (a test's manual clock must not defer it for ever).
    const waitMs = event.createdAt.getTime() + this.options.revokeCompletionGraceMs - Date.now();
    if (waitMs > 0) throw new OutboxDeferredError('the revoke may still be finishing its vault side', { retryAfterMs: waitMs, code: 'REVOKE_COMPLETION_GRACE' });
    try {
      await this.completeRevoke(event, event.tenantId, id);
    } catch (e) {
      // The vault away: said once for every revoke waiting, the event deferred (no warning per attempt, nor the dispatcher's).
      throw (await this.unreachable.deferral(e)) ?? e;
    }
    this.unreachable.answered();
  }

  /** `finishRevoke` past the revoke's grace. */
  private async completeRevoke(event: OutboxEvent, tenantId: string, id: string): Promise<void> {
    const row = await this.rows.findById(tenantId, id);
    if (!row || row.status === CredentialStatus.DELETED) return;
    if (row.status !== CredentialStatus.REVOKED) return this.withdrawMarked(row);
    if (!(await this.anyVersionEnabled(row))) return;
    const ctx: OperationContext = { tenantId: tenantId, actor: { id: 'system:credentials' } };
    // One pass of a revoke, never its status change: a credential rotated meanwhile is not revoked again.
    const seen = new Set<string>();
    const fenced: CredentialEntity = { ...row, rowVersion: row.rowVersion + 1 };
    try {
      await this.disableVaultVersions(ctx, id, row, seen);
    } catch (e) {
      await this.rows.compareAndSet(row, fenced).catch(() => undefined);
      if (!vaultUnreachable(e)) this.logger.warn(`credential ${id}: revoked, but Key Vault versions of it are still enabled (attempt ${event.attempts + 1}: ${describeError(e)}); retried with the outbox's backoff`);
      throw e;
    }
    if (await this.rows.compareAndSet(row, fenced)) {
      await this.evictEverywhere(ctx, id);
      this.logger.warn(`credential ${id}: its revoke had left Key Vault versions enabled (its process stopped, or the vault failed it); ${seen.size} disabled now`);
      return;
    }
    // A write committed meanwhile, active again: what this pass disabled that no revoke marks now is enabled again — a
    // rotation's version (the listing may have taken it for an orphan), or every version an un-revoke lifted (the
    // previous ones too: a rollback reads them). The marked ones are disabled last. Still revoked (again): the next delivery looks.
    const now = await this.rows.findById(tenantId, id);
    if (!now || now.status === CredentialStatus.DELETED) return;
    if (now.status === CredentialStatus.REVOKED) throw new Error(`credential ${id} changed during the completion of its revoke`);
    for (const v of await this.versions.list(now.tenantId, id)) {
      if (!v.revokedAt && v.vaultSecretName && v.vaultSecretVersion && seen.has(`${v.vaultSecretName}/${v.vaultSecretVersion}`)) {
        await this.keyVault.updateSecretProperties(v.vaultSecretName, v.vaultSecretVersion, { enabled: true });
      }
    }
    await this.withdrawMarked(now);
  }

  /** A credential active again: the versions revokes marked (never served again) disabled at the vault, idempotently. */
  private async withdrawMarked(row: CredentialEntity): Promise<void> {
    for (const v of await this.versions.list(row.tenantId, row.id)) {
      if (v.revokedAt && v.vaultSecretName && v.vaultSecretVersion) await this.keyVault.updateSecretProperties(v.vaultSecretName, v.vaultSecretVersion, { enabled: false });
    }
  }

  /** Whether a version of the revoked `row` is enabled at the vault: one its last revoke marks, or an orphan of it. */
  private async anyVersionEnabled(row: CredentialEntity): Promise<boolean> {
    const rows = await this.versions.list(row.tenantId, row.id);
    const marked = new Set(lastRevoked(rows).map((v) => `${v.vaultSecretName}/${v.vaultSecretVersion}`));
    for (const name of this.vaultStore.secretNamesOf(ownerOf(row), row.vaultGeneration, rows.map((r) => r.vaultSecretName))) {
      const enabled = await this.vaultStore.enabledVersions(name);
      if (enabled.some((v) => marked.has(`${name}/${v.version}`) || (row.valueStore === ValueStoreKind.VAULT && v.tags[CREDENTIAL_TAG] === row.id))) return true;
    }
    return false;
  }

  /**
   * `options.inCommit` runs in the status change's transaction (not when there was nothing to lift). The status
   * change is a compare-and-set on the revoked row: a write that got there first — a rotation on another replica,
   * which makes the credential active and leaves its revoke's versions withdrawn — is not overwritten, and the
   * vault versions enabled for the lift are disabled again.
   */
  async unrevoke(ctx: OperationContext, id: string, options: CommitOptions<RevokeValueResult> = {}): Promise<RevokeValueResult> {
    // A refusal (an internal row, not found) or a vault failure is audited as the un-revoke's, as a rotate's would be.
    return this.committer.audited(AuditAction.UNREVOKE, ctx, id, () => this.unrevokeOnce(ctx, id, options));
  }

  private async unrevokeOnce(ctx: OperationContext, id: string, options: CommitOptions<RevokeValueResult>): Promise<RevokeValueResult> {
    let enabled = false;
    for (let attempt = 1; ; attempt++) {
      const row = await loadLive(this.rows, ctx.tenantId, id);
      // Before the vault: an internal row's revoke is not lifted (its status change would be refused after the vault's).
      assertChangeable(row);
      // Not revoked (never, or rotated since): nothing to lift; the versions of an earlier revoke stay withdrawn.
      if (row.status !== CredentialStatus.REVOKED) {
        if (enabled) await this.setVaultVersionsEnabled(ctx, id, false);
        return { metadata: toMetadata(row, this.clock.nowMs()), vaultVersions: 0 };
      }
      // The vault first, outside any transaction; the status change commits only once it is done.
      const vaultVersions = await this.setVaultVersionsEnabled(ctx, id, true);
      enabled = true;
      const inCommit = options.inCommit;
      try {
        const metadata: CredentialMetadata = await this.writer.updateMetadata(
          ctx,
          id,
          {
            status: CredentialStatus.ACTIVE,
            expectedVersion: row.rowVersion,
            ...(inCommit ? { inCommit: (m: CredentialMetadata) => inCommit({ metadata: m, vaultVersions }) } : {}),
          },
          // A lost compare-and-set is looked at again below, not a failed metadata update: unaudited, unless it is the last.
          { revoke: true, conflictRetried: attempt < UNREVOKE_ATTEMPTS },
        );
        return { metadata, vaultVersions };
      } catch (e) {
        // Changed meanwhile: look again (still revoked: lift it; no longer: put the vault back).
        if (!(e instanceof CredentialConflictError) || attempt >= UNREVOKE_ATTEMPTS) throw e;
      }
    }
  }

  /** Un-revoke: the versions of the last revoke, enabled or disabled again; then the cache entry everywhere. */
  private async setVaultVersionsEnabled(ctx: OperationContext, id: string, enabled: boolean): Promise<number> {
    const seen = new Set<string>();
    await this.setLastRevoked(await this.versions.list(ctx.tenantId, id), enabled, seen);
    await this.evictEverywhere(ctx, id);
    return seen.size;
  }

  /** Revoke: the versions its metadata marks, then every other enabled version of its secrets (`seen`: those done). */
  private async disableVaultVersions(ctx: OperationContext, id: string, row: CredentialEntity, seen: Set<string>): Promise<void> {
    const rows = await this.versions.list(ctx.tenantId, id);
    await this.setLastRevoked(rows, false, seen);
    // The versions no row references (a write that crashed between its vault write and its commit, or whose
    // discard failed) hold values too. Un-revoke never re-enables them: no metadata would ever serve them.
    if (row.valueStore !== ValueStoreKind.VAULT) return;
    for (const name of this.vaultStore.secretNamesOf(ownerOf(row), row.vaultGeneration, rows.map((r) => r.vaultSecretName))) {
      const disabled = (await this.vaultStore.enabledVersions(name)).filter((v) => v.tags[CREDENTIAL_TAG] === id && !seen.has(`${name}/${v.version}`));
      await this.vaultStore.disable(name, disabled);
      for (const v of disabled) seen.add(`${name}/${v.version}`);
    }
  }

  /** The versions of the last revoke (an earlier revoke's stay disabled), as the metadata marks them. */
  private async setLastRevoked(rows: CredentialVersionEntity[], enabled: boolean, seen: Set<string>): Promise<void> {
    for (const v of lastRevoked(rows)) {
      if (!v.vaultSecretName || !v.vaultSecretVersion) continue;
      const key = `${v.vaultSecretName}/${v.vaultSecretVersion}`;
      if (seen.has(key)) continue; // a rollback re-points at a version written before
      seen.add(key);
      await this.keyVault.updateSecretProperties(v.vaultSecretName, v.vaultSecretVersion, { enabled });
    }
  }

  /**
   * Everywhere, before returning (the status change's own eviction already ran; this one follows the vault change).
   * Not announced (Redis unreachable from here): wait until replicas that cannot hear it have stopped serving
   * from their caches; one that can hear Redis gets it from the outbox event's handler.
   */
  private async evictEverywhere(ctx: OperationContext, id: string): Promise<void> {
    const entry = cacheKey(ctx.tenantId, id);
    await this.cache.evictEverywhere(entry).catch(async () => {
      this.cache.invalidate(entry);
      await this.cache.outlastUnheardEviction();
      // A short outage may be over by now, before any replica noticed it: announce it again.
      await this.cache.evictEverywhere(entry).catch(() => undefined);
    });
  }
}
