import { Injectable } from '@nestjs/common';
import { TransactionRunner } from '@app/common';
import { In } from 'typeorm';
import { MigrationCheckpointEntity } from './migration-checkpoint.entity';

/** Every SQL access to `cv_migration_checkpoints`, through the runner (reads `read`, writes join `run`). */
@Injectable()
export class MigrationCheckpointRepository {
  constructor(private readonly runner: TransactionRunner) {}

  private get repo() {
    return this.runner.manager.getRepository(MigrationCheckpointEntity);
  }

  /** The checkpoints among `legacyIds` of `source`, by legacy id. */
  async find(source: string, legacyIds: string[]): Promise<Map<string, MigrationCheckpointEntity>> {
    if (!legacyIds.length) return new Map();
    const rows = await this.runner.read(() => this.repo.find({ where: { source, legacyId: In(legacyIds) } }));
    return new Map(rows.map((r) => [r.legacyId, r]));
  }

  /** Inserts or updates one checkpoint; joins the ambient transaction (the caller's `runner.run`). */
  async save(row: MigrationCheckpointEntity): Promise<void> {
    // One statement (INSERT … ON CONFLICT DO UPDATE) on both databases, not save()'s SELECT + write.
    await this.runner.run(() => this.repo.upsert(row, ['source', 'legacyId']));
  }

  /** `save` of many checkpoints in one statement per 100; joins the ambient transaction. */
  async saveMany(rows: MigrationCheckpointEntity[]): Promise<void> {
    for (let i = 0; i < rows.length; i += 100) {
      const chunk = rows.slice(i, i + 100);
      await this.runner.run(() => this.repo.upsert(chunk, ['source', 'legacyId']));
    }
  }

  async countBySource(source: string): Promise<number> {
    return this.runner.read(() => this.repo.count({ where: { source } }));
  }
}
