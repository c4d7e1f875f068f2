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

  /** Versions whose value was written to `secretName` (rollbacks re-point, they write nothing). */
  countWrittenTo(credentialId: string, secretName: string): Promise<number> {
    return this.runner.read(() =>
      this.runner.manager
        .createQueryBuilder(CredentialVersionEntity, 'v')
        .where('v.credentialId = :id AND v.vaultSecretName = :name AND v.sourceVersion IS NULL', { id: credentialId, name: secretName })
        .getCount(),
    );
  }
}
