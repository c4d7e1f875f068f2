import type { DataSource } from 'typeorm';
import { TransactionRunner } from '../persistence/transaction-runner';
import { JobRunEntity } from './job-run.entity';

/**
 * The jobs' last successes in `cv_job_runs`, one row per job name, shared by every replica of a
 * DataSource. Through a TransactionRunner: on SQLite's one connection a bare query could land inside
 * another caller's open transaction.
 */
export class JobRunLedger {
  private static readonly ledgers = new WeakMap<DataSource, JobRunLedger>();

  static for(dataSource: DataSource): JobRunLedger {
    let ledger = JobRunLedger.ledgers.get(dataSource);
    if (!ledger) JobRunLedger.ledgers.set(dataSource, (ledger = new JobRunLedger(new TransactionRunner(dataSource))));
    return ledger;
  }

  private constructor(private readonly runner: TransactionRunner) {}

  async recordSuccess(name: string, at: Date): Promise<void> {
    await this.runner.run(() => this.runner.manager.getRepository(JobRunEntity).upsert({ name, lastSuccessAt: at }, ['name']));
  }

  async lastSuccess(name: string): Promise<Date | null> {
    const row = await this.runner.read(() => this.runner.manager.getRepository(JobRunEntity).findOne({ where: { name } }));
    return row?.lastSuccessAt ?? null;
  }
}
