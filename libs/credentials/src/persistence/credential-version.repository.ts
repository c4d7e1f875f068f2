import { TransactionRunner } from '@app/common';
import { CredentialVersionEntity } from '../entities/credential-version.entity';
import { insertRows } from './plain-insert';

/**
 * Every SQL access to `cv_credential_versions` (pointers into the value stores, never values). Reads
 * through `runner.read`, writes through `runner.run`, like `CredentialRepository`.
 */
export class CredentialVersionRepository {
  constructor(private readonly runner: TransactionRunner) {}

  insert(row: CredentialVersionEntity): Promise<void> {
    return this.runner.run(async () => {
      await this.runner.manager.insert(CredentialVersionEntity, row);
    });
  }

  /**
   * Inserts many rows in fixed multi-row statements (`storeMany`, see `insertRows`); joins the
   * caller's transaction.
   */
  insertMany(rows: CredentialVersionEntity[]): Promise<void> {
    return this.runner.run(() => insertRows(this.runner.manager, CredentialVersionEntity, rows));
  }

  find(tenantId: string, credentialId: string, version: number): Promise<CredentialVersionEntity | null> {
    return this.runner.read(() => this.runner.manager.findOneBy(CredentialVersionEntity, { credentialId, tenantId, version }));
  }

  /** Every version of the credential, newest first. */
  list(tenantId: string, credentialId: string): Promise<CredentialVersionEntity[]> {
    return this.runner.read(() => this.runner.manager.find(CredentialVersionEntity, { where: { credentialId, tenantId }, order: { version: 'DESC' } }));
  }

  /** Marks every version not yet revoked as revoked `at` (the revoke's transaction). */
  markRevoked(tenantId: string, credentialId: string, at: Date): Promise<void> {
    return this.runner.run(async () => {
      await this.runner.manager
        .createQueryBuilder()
        .update(CredentialVersionEntity)
        .set({ revokedAt: at })
        .where('credential_id = :credentialId AND tenant_id = :tenantId AND revoked_at IS NULL', { credentialId, tenantId })
        .execute();
    });
  }

  /** Clears the marks of the last revoke (`lastRevoked`): the un-revoke's transaction. */
  liftRevoked(tenantId: string, credentialId: string, versions: CredentialVersionEntity[]): Promise<void> {
    if (versions.length === 0) return Promise.resolve();
    return this.runner.run(async () => {
      await this.runner.manager
        .createQueryBuilder()
        .update(CredentialVersionEntity)
        .set({ revokedAt: null })
        .where('credential_id = :credentialId AND tenant_id = :tenantId AND version IN (:...numbers)', { credentialId, tenantId, numbers: versions.map((v) => v.version) })
        .execute();
    });
  }

  /** Versions whose value was written to `secretName` (rollbacks re-point, they write nothing). */
  countWrittenTo(credentialId: string, secretName: string): Promise<number> {
    return this.runner.read(() =>
      this.runner.manager
        .createQueryBuilder(CredentialVersionEntity, 'v')
        .where('v.credentialId = :id AND v.vaultSecretName = :name AND v.sourceVersion IS NULL', { id: credentialId, name: secretName })
        .getCount(),
    );
  }

  /**
   * The vault versions (`name/version`, the name lower-cased: Key Vault names are case-insensitive) the version rows of
   * `credentialId` reference, whatever its tenant or status: for the orphan-versions job, which knows a version's
   * credential by its tag only.
   */
  async vaultPointersOf(credentialId: string): Promise<Set<string>> {
    const rows = await this.runner.read(() =>
      this.runner.manager
        .createQueryBuilder(CredentialVersionEntity, 'v')
        .select(['v.vaultSecretName', 'v.vaultSecretVersion'])
        .where('v.credentialId = :id AND v.vaultSecretName IS NOT NULL', { id: credentialId })
        .getMany(),
    );
    return new Set(rows.map((r) => vaultPointerKey(r.vaultSecretName ?? '', r.vaultSecretVersion ?? '')));
  }
}

/** How `vaultPointersOf` names a version. */
export function vaultPointerKey(name: string, version: string): string {
  return `${name.toLowerCase()}/${version.toLowerCase()}`;
}

/**
 * The versions the last revoke withdrew (those with the latest `revokedAt`), which un-revoke gives
 * back; the versions of an earlier revoke, since rotated away, stay withdrawn. None marked (a revoke
 * from before the marks): all of them.
 */
export function lastRevoked(versions: CredentialVersionEntity[]): CredentialVersionEntity[] {
  const latest = latestRevokeMs(versions);
  return latest < 0 ? versions : versions.filter((v) => v.revokedAt?.getTime() === latest);
}

/** A new revoke's mark: `now`, or just after the previous revoke's, so the last revoke's versions are told apart. */
export function revokeMark(versions: CredentialVersionEntity[], now: Date): Date {
  return new Date(Math.max(now.getTime(), latestRevokeMs(versions) + 1));
}

/** The latest revoke's mark (epoch ms), or -1 when no version is marked. */
function latestRevokeMs(versions: CredentialVersionEntity[]): number {
  return Math.max(-1, ...versions.map((v) => v.revokedAt?.getTime() ?? -1));
}
