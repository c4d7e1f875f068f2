import { CreateOutbox1800000000000 } from './1800000000000-create-outbox';

export { CreateOutbox1800000000000 };

/** Register these with the host's TypeOrmModule.forRoot({ migrations }). */
export const OUTBOX_MIGRATIONS = [CreateOutbox1800000000000];
