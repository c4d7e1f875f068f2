import { CreateJobRuns1900000000000 } from '../../jobs/migrations/1900000000000-create-job-runs';
import { CreateLockLeases1910000000000 } from '../../lock/migrations/1910000000000-create-lock-leases';
import { CreateOutbox1800000000000 } from './1800000000000-create-outbox';

export { CreateJobRuns1900000000000, CreateLockLeases1910000000000, CreateOutbox1800000000000 };

/** The common lib's tables (the outbox, the scheduled jobs' last successes, the locks' leases): register these with the host's TypeOrmModule.forRoot({ migrations }). */
export const OUTBOX_MIGRATIONS = [CreateOutbox1800000000000, CreateJobRuns1900000000000, CreateLockLeases1910000000000];
