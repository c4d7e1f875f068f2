import { Injectable } from '@nestjs/common';
import { TransactionRunner } from '@app/common';
import { RotationPolicyEntity } from '../entities/rotation-policy.entity';

/** The stored key of a scope: '' stands for "none" (no target at tenant level, every type). */
export interface PolicyKey {
  tenantId: string;
  level: string;
  target: string;
  credentialType: string;
}

/** Every SQL access to `cv_rotation_policies`. Reads through `runner.read`, writes through `runner.run`. */
@Injectable()
export class RotationPolicyRepository {
  constructor(private readonly runner: TransactionRunner) {}

  find(key: PolicyKey): Promise<RotationPolicyEntity | null> {
    return this.runner.read(() => this.runner.manager.findOneBy(RotationPolicyEntity, { ...key }));
  }

  /** Every override of the tenant, stable order (level, target, type). */
  listByTenant(tenantId: string): Promise<RotationPolicyEntity[]> {
    return this.runner.read(() =>
      this.runner.manager.find(RotationPolicyEntity, { where: { tenantId }, order: { level: 'ASC', target: 'ASC', credentialType: 'ASC' } }),
    );
  }

  /** The overrides that can apply to one credential: the tenant's, its integration's and its own. */
  listApplicable(tenantId: string, integrationId: string, credentialId: string): Promise<RotationPolicyEntity[]> {
    return this.runner.read(() =>
      this.runner.manager.find(RotationPolicyEntity, {
        where: [
          { tenantId, level: 'tenant' },
          { tenantId, level: 'integration', target: integrationId },
          { tenantId, level: 'credential', target: credentialId },
        ],
      }),
    );
  }

  /** Inserts a new override; false (nothing written) when a concurrent writer created the scope's override first. */
  insert(row: RotationPolicyEntity): Promise<boolean> {
    return this.runner.run(async () => {
      // ON CONFLICT DO NOTHING: the scope's unique violation would abort the whole PostgreSQL transaction (a 500).
      await this.runner.manager.createQueryBuilder().insert().into(RotationPolicyEntity).values(row).orIgnore().execute();
      return this.runner.manager.existsBy(RotationPolicyEntity, { id: row.id });
    });
  }

  /** Compare-and-set on `row_version`: false when another writer changed the row first. */
  compareAndSet(before: RotationPolicyEntity, next: RotationPolicyEntity): Promise<boolean> {
    return this.runner.run(async () => {
      const result = await this.runner.manager.update(
        RotationPolicyEntity,
        { id: before.id, rowVersion: before.rowVersion },
        { rotateAfterDays: next.rotateAfterDays, warnBeforeDays: next.warnBeforeDays, rotation: next.rotation, updatedAt: next.updatedAt, updatedBy: next.updatedBy, rowVersion: next.rowVersion },
      );
      return (result.affected ?? 0) === 1;
    });
  }

  delete(row: RotationPolicyEntity): Promise<boolean> {
    return this.runner.run(async () => {
      const result = await this.runner.manager.delete(RotationPolicyEntity, { id: row.id, rowVersion: row.rowVersion });
      return (result.affected ?? 0) === 1;
    });
  }
}
