import { Inject, Injectable } from '@nestjs/common';
import { Clock, type OperationContext } from '@app/common';
import { KeyVaultProvider } from '@app/key-vault';
import { CredentialCache } from './cache/credential-cache';
import { CredentialStatus, ValueStoreKind } from './credential-type';
import { CREDENTIALS_CLOCK } from './credentials.constants';
import type { CommitOptions, CredentialMetadata, RevokeValueResult } from './credential.types';
import type { CredentialEntity } from './entities/credential.entity';
import { CredentialWriter } from './credential.writer';
import { CredentialConflictError } from './errors/credential-errors';
import { cacheKey, ownerOf, toMetadata } from './internal/credential-view';
import { assertContext, loadLive } from './internal/guards';
import { CredentialRepository } from './persistence/credential.repository';
import { CredentialVersionRepository, lastRevoked } from './persistence/credential-version.repository';
import { CREDENTIAL_TAG, VaultValueStore } from './stores/vault-value-store';

/** Attempts of an unrevoke whose status change met a concurrent write of the credential. */
const UNREVOKE_ATTEMPTS = 3;

/**
 * Emergency revoke of one credential's value: the status becomes `revoked` first (reads are refused
 * from then on, cache hits included: the commit purges the cache entry), then every Key Vault secret
 * version the credential ever wrote is disabled, so the value is not readable at the vault either.
 * Envelope values need no more than the status. The versions revoked are marked (`revokedAt`, in the
 * status change's transaction) and never served again, even after a rotation made the credential active.
 * Revoke also disables the versions no metadata references — orphans of writes that crashed between the vault write
 * and the commit — found by listing the credential's secrets: no version of a revoked credential stays enabled.
 * Un-revoke of a revoked credential re-enables the versions its last revoke withdrew, then makes it
 * active; of any other credential it does nothing. Both are idempotent: a failure half way is finished
 * by calling again.
 */
@Injectable()
export class CredentialRevoker {
  constructor(
    private readonly writer: CredentialWriter,
    private readonly rows: CredentialRepository,
    private readonly versions: CredentialVersionRepository,
    private readonly keyVault: KeyVaultProvider,
    private readonly vaultStore: VaultValueStore,
    private readonly cache: CredentialCache,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
  ) {}

  async revoke(ctx: OperationContext, id: string): Promise<RevokeValueResult> {
    assertContext(ctx);
    const row = await loadLive(this.rows, ctx.tenantId, id);
    // Already revoked (a retry after a vault failure, or the caller set the status in its transaction): only the vault is left.
    const metadata =
      row.status === CredentialStatus.REVOKED ? toMetadata(row, this.clock.nowMs()) : await this.writer.updateMetadata(ctx, id, { status: CredentialStatus.REVOKED });
    const vaultVersions = await this.setVaultVersionsEnabled(ctx, id, false, row);
    return { metadata, vaultVersions };
  }

  /**
   * `options.inCommit` runs in the status change's transaction (not when there was nothing to lift). The status
   * change is a compare-and-set on the revoked row: a write that got there first — a rotation on another replica,
   * which makes the credential active and leaves its revoke's versions withdrawn — is not overwritten, and the
   * vault versions enabled for the lift are disabled again.
   */
  async unrevoke(ctx: OperationContext, id: string, options: CommitOptions<RevokeValueResult> = {}): Promise<RevokeValueResult> {
    assertContext(ctx);
    let enabled = false;
    for (let attempt = 1; ; attempt++) {
      const row = await loadLive(this.rows, ctx.tenantId, id);
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

  /** `revoking`: the credential's row (revoke); then every other enabled version of its secrets is disabled too. */
  private async setVaultVersionsEnabled(ctx: OperationContext, id: string, enabled: boolean, revoking?: CredentialEntity): Promise<number> {
    const seen = new Set<string>();
    const rows = await this.versions.list(ctx.tenantId, id);
    // The versions of the last revoke (an earlier revoke's stay disabled), as the metadata marks them.
    for (const v of lastRevoked(rows)) {
      if (!v.vaultSecretName || !v.vaultSecretVersion) continue;
      const key = `${v.vaultSecretName}/${v.vaultSecretVersion}`;
      if (seen.has(key)) continue; // a rollback re-points at a version written before
      seen.add(key);
      await this.keyVault.updateSecretProperties(v.vaultSecretName, v.vaultSecretVersion, { enabled });
    }
    // Revoke: the versions no row references (a write that crashed between its vault write and its commit, or whose
    // discard failed) hold values too. Un-revoke never re-enables them: no metadata would ever serve them.
    if (revoking?.valueStore === ValueStoreKind.VAULT) {
      for (const name of this.vaultStore.secretNamesOf(ownerOf(revoking), revoking.vaultGeneration, rows.map((r) => r.vaultSecretName))) {
        const disabled = (await this.vaultStore.enabledVersions(name)).filter((v) => v.tags[CREDENTIAL_TAG] === id && !seen.has(`${name}/${v.version}`));
        await this.vaultStore.disable(name, disabled);
        for (const v of disabled) seen.add(`${name}/${v.version}`);
      }
    }
    // Everywhere, before returning (the status change's own eviction already ran; this one follows the vault change).
    // Not announced (Redis unreachable from here): wait until replicas that cannot hear it have stopped serving
    // from their caches; one that can hear Redis gets it from the outbox event's handler.
    const entry = cacheKey(ctx.tenantId, id);
    await this.cache.evictEverywhere(entry).catch(async () => {
      this.cache.invalidate(entry);
      await this.cache.outlastUnheardEviction();
      // A short outage may be over by now, before any replica noticed it: announce it again.
      await this.cache.evictEverywhere(entry).catch(() => undefined);
    });
    return seen.size;
  }
}
