import { NOTIFICATION_ENTITIES, NOTIFICATION_MIGRATIONS } from './notifications';
import { WEBHOOK_ENTITIES, WEBHOOK_MIGRATIONS } from './webhooks';
import { ROTATION_CORE_ENTITIES } from './entities';
import { ROTATION_CORE_MIGRATIONS } from './migrations';

/** Every table of the lib (core, webhooks, notifications): the host registers them with TypeOrmModule.forRoot. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export const ROTATION_ENTITIES: Function[] = [...ROTATION_CORE_ENTITIES, ...WEBHOOK_ENTITIES, ...NOTIFICATION_ENTITIES];
/** Every migration of the lib, in order. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export const ROTATION_MIGRATIONS: Function[] = [...ROTATION_CORE_MIGRATIONS, ...WEBHOOK_MIGRATIONS, ...NOTIFICATION_MIGRATIONS];
