import { JobRunEntity } from '../jobs/job-run.entity';
import { LockLeaseEntity } from '../lock/lock-lease.entity';
import { OutboxEventEntity } from './outbox-event.entity';

export * from './outbox.types';
export * from './outbox';
export * from './outbox-handler-registry';
export * from './outbox-dispatcher';
export * from './migrations';
export { OutboxEventEntity };

/** The common lib's tables — the outbox, the scheduled jobs' last successes, and the locks' leases: register these with the host's TypeOrmModule.forRoot({ entities }). */
export const OUTBOX_ENTITIES = [OutboxEventEntity, JobRunEntity, LockLeaseEntity];
