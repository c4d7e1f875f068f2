import type { SelectQueryBuilder } from 'typeorm';
import { TransactionRunner } from '@app/common';
import { WrappedDataKeyEntity } from '../entities/wrapped-data-key.entity';

/** Every SQL access to `cv_wrapped_data_keys`. Reads through `runner.read`, writes through `runner.run`. */
export class WrappedDataKeyRepository {
  constructor(private readonly runner: TransactionRunner) {}

  insert(row: WrappedDataKeyEntity): Promise<void> {
    return this.runner.run(async () => {
      await this.runner.manager.insert(WrappedDataKeyEntity, row);
    });
  }

  /** The tenant's newest data key (the one new ciphertexts use). */
  latestOfTenant(tenantId: string): Promise<WrappedDataKeyEntity | null> {
    return this.runner.read(() =>
      this.runner.manager.findOne(WrappedDataKeyEntity, { where: { tenantId }, order: { createdAt: 'DESC', id: 'DESC' } }),
    );
  }

  find(tenantId: string, version: string): Promise<WrappedDataKeyEntity | null> {
    return this.runner.read(() => this.runner.manager.findOneBy(WrappedDataKeyEntity, { tenantId, version }));
  }

  /** Replaces the wrapped blob if it is still under `previousKekVersion` (compare-and-set); true when it was. */
  rewrap(id: string, previousKekVersion: string, next: Pick<WrappedDataKeyEntity, 'kekName' | 'kekVersion' | 'wrappedKey' | 'updatedAt'>): Promise<boolean> {
    return this.runner.run(async () => {
      const result = await this.runner.manager
        .createQueryBuilder()
        .update(WrappedDataKeyEntity)
        .set(next)
        .where('id = :id AND kek_version = :old', { id, old: previousKekVersion })
        .execute();
      return (result.affected ?? 0) > 0;
    });
  }

  /**
   * Rows not wrapped by `kek` at `kekVersion` (an older version, or another key after `envelope.keyEncryptionKey`
   * changed), after `afterId` in id order: a forced re-wrap pages through them. `tenantId` narrows to one tenant.
   */
  pageNotUnder(kek: { name: string; version: string }, afterId: string, limit: number, tenantId?: string): Promise<WrappedDataKeyEntity[]> {
    return this.runner.read(() => this.notUnder(kek, tenantId).andWhere('w.id > :afterId', { afterId }).orderBy('w.id', 'ASC').limit(limit).getMany());
  }

  /** How many rows `pageNotUnder` would go through. */
  countNotUnder(kek: { name: string; version: string }, tenantId?: string): Promise<number> {
    return this.runner.read(() => this.notUnder(kek, tenantId).getCount());
  }

  private notUnder(kek: { name: string; version: string }, tenantId?: string): SelectQueryBuilder<WrappedDataKeyEntity> {
    const q = this.runner.manager
      .createQueryBuilder(WrappedDataKeyEntity, 'w')
      .where('(w.kekName <> :kekName OR w.kekVersion <> :kekVersion)', { kekName: kek.name, kekVersion: kek.version });
    return tenantId === undefined ? q : q.andWhere('w.tenantId = :tenantId', { tenantId });
  }
}
