import { Injectable } from '@nestjs/common';
import { TransactionRunner } from '@app/common';
import { RotationNoticeEntity } from '../entities/rotation-notice.entity';

/** Every SQL access to `cv_rotation_notices`, the dedupe keys of the jobs' notices. */
@Injectable()
export class RotationNoticeRepository {
  constructor(private readonly runner: TransactionRunner) {}

  /** The notices already raised for one version of a credential. */
  async raised(credentialId: string, version: number): Promise<Set<string>> {
    const rows = await this.runner.read(() => this.runner.manager.find(RotationNoticeEntity, { where: { credentialId, version }, select: { notice: true } }));
    return new Set(rows.map((r) => r.notice));
  }

  /**
   * Records a notice inside the caller's transaction. The primary key (credential, version, notice)
   * is the backstop: a second writer fails its whole transaction, event included.
   */
  async record(row: RotationNoticeEntity): Promise<void> {
    await this.runner.run(async () => {
      await this.runner.manager.insert(RotationNoticeEntity, row);
    });
  }
}
