import { Column, Entity, PrimaryColumn } from 'typeorm';
import { epochMsDate } from '../persistence/column-transformers';

/**
 * When each scheduled job last succeeded on any replica (or CLI run through `ScheduledJobs`): what a
 * replica that keeps finding the job's lock taken measures staleness from. Without it a lock holder that
 * hangs (a stuck CLI, a `psql` session) had every replica skip the job forever, none of them degraded.
 */
@Entity({ name: 'cv_job_runs' })
export class JobRunEntity {
  @PrimaryColumn({ type: 'varchar', length: 128 })
  name: string;

  @Column({ name: 'last_success_at', type: 'bigint', transformer: epochMsDate })
  lastSuccessAt: Date;
}
