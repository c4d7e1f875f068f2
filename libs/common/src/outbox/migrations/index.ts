import { CreateJobRuns1900000000000 } from '../../jobs/migrations/1900000000000-create-job-runs';
import { CreateOutbox1800000000000 } from './1800000000000-create-outbox';

export { CreateJobRuns1900000000000, CreateOutbox1800000000000 };

/** The common lib's tables (the outbox, the scheduled jobs' last successes): register these with the host's TypeOrmModule.forRoot({ migrations }). */
export const OUTBOX_MIGRATIONS = [CreateOutbox1800000000000, CreateJobRuns1900000000000];
