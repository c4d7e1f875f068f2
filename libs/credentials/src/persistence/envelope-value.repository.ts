import { TransactionRunner } from '@app/common';
import { EnvelopeValueEntity } from '../entities/envelope-value.entity';

/** The columns a re-encryption replaces. */
export type ResealedEnvelope = Pick<EnvelopeValueEntity, 'iv' | 'authTag' | 'ciphertext' | 'dataKeyName' | 'dataKeyVersion' | 'updatedAt'>;

/**
 * Every SQL access to `cv_envelope_values` (ciphertexts; the data keys themselves are Key Vault
 * secrets, see `DataKeyService`). Reads through `runner.read`, writes through `runner.run`.
 */
export class EnvelopeValueRepository {
  constructor(private readonly runner: TransactionRunner) {}

  insert(row: EnvelopeValueEntity): Promise<void> {
    return this.runner.run(async () => {
      await this.runner.manager.insert(EnvelopeValueEntity, row);
    });
  }

  find(tenantId: string, id: string): Promise<EnvelopeValueEntity | null> {
    return this.runner.read(() => this.runner.manager.findOneBy(EnvelopeValueEntity, { id, tenantId }));
  }

  /** The tenant's rows after `afterId`, by id: a batch of a full scan that never loads every row. */
  pageOfTenant(tenantId: string, afterId: string, limit: number): Promise<EnvelopeValueEntity[]> {
    return this.runner.read(() =>
      this.runner.manager
        .createQueryBuilder(EnvelopeValueEntity, 'e')
        .where('e.tenantId = :tenantId AND e.id > :afterId', { tenantId, afterId })
        .orderBy('e.id', 'ASC')
        .limit(limit)
        .getMany(),
    );
  }

  /** Replaces the ciphertext of `id` if it is still under `previousKeyVersion` (compare-and-set); true when it was. */
  reseal(id: string, previousKeyVersion: string, sealed: ResealedEnvelope): Promise<boolean> {
    return this.runner.run(async () => {
      const result = await this.runner.manager
        .createQueryBuilder()
        .update(EnvelopeValueEntity)
        .set(sealed)
        .where('id = :id AND data_key_version = :old', { id, old: previousKeyVersion })
        .execute();
      return (result.affected ?? 0) > 0;
    });
  }

  /** Deletes one ciphertext of the credential (one no version row points at). */
  deleteById(tenantId: string, credentialId: string, id: string): Promise<void> {
    return this.runner.run(async () => {
      await this.runner.manager.delete(EnvelopeValueEntity, { id, credentialId, tenantId });
    });
  }

  /** Deletes every ciphertext of the credential (in the caller's transaction when there is one). */
  deleteOfCredential(tenantId: string, credentialId: string): Promise<void> {
    return this.runner.run(async () => {
      await this.runner.manager.delete(EnvelopeValueEntity, { credentialId, tenantId });
    });
  }
}
