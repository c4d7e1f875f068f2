import { Injectable } from '@nestjs/common';
import { TransactionRunner } from '@app/common';
import { RotationHistoryEntity } from '../entities/rotation-history.entity';

/** Every SQL access to `cv_rotation_history`. */
@Injectable()
export class RotationHistoryRepository {
  constructor(private readonly runner: TransactionRunner) {}

  async insert(row: RotationHistoryEntity): Promise<void> {
    await this.runner.run(async () => {
      await this.runner.manager.insert(RotationHistoryEntity, row);
    });
  }

  /** A credential's history, newest first. */
  list(tenantId: string, credentialId: string, limit: number): Promise<RotationHistoryEntity[]> {
    return this.runner.read(() =>
      this.runner.manager.find(RotationHistoryEntity, { where: { tenantId, credentialId }, order: { createdAt: 'DESC', id: 'DESC' }, take: limit }),
    );
  }
}
