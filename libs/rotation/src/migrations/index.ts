import { CreateRotationTables1830000000000 } from './1830000000000-create-rotation-tables';

export { CreateRotationTables1830000000000 };

/** The core's migrations, in order. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export const ROTATION_CORE_MIGRATIONS: Function[] = [CreateRotationTables1830000000000];
