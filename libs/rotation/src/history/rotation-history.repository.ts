import { Injectable } from '@nestjs/common';
import { TransactionRunner } from '@app/common';
import { RotationHistoryEntity } from '../entities/rotation-history.entity';

/** Every SQL access to `cv_rotation_history`. */
@Injectable()
export class RotationHistoryRepository {
  constructor(private readonly runner: TransactionRunner) {}

  /**
   * ON CONFLICT DO NOTHING: a rotation or rollback already recorded (another replica answering the same webhook
   * promotion, a retry) keeps its one row (UQ_cv_rotation_history_rotation), and a PostgreSQL transaction is not aborted.
   */
  async insert(row: RotationHistoryEntity): Promise<void> {
    await this.runner.run(async () => {
      await this.runner.manager.createQueryBuilder().insert().into(RotationHistoryEntity).values(row).orIgnore().execute();
    });
  }

  /** A credential's history, newest first. */
  list(tenantId: string, credentialId: string, limit: number): Promise<RotationHistoryEntity[]> {
    return this.runner.read(() =>
      this.runner.manager.find(RotationHistoryEntity, { where: { tenantId, credentialId }, order: { createdAt: 'DESC', id: 'DESC' }, take: limit }),
    );
  }
}
