import { MigrationCheckpointEntity } from './checkpoint/migration-checkpoint.entity';
import { CreateMigrationCheckpoints1810000000000 } from './migrations';

/** Pass to the host's `TypeOrmModule.forRoot({ entities })`. */
export const MIGRATION_ENTITIES = [MigrationCheckpointEntity];

/** Pass to the host's `TypeOrmModule.forRoot({ migrations })` (run them; no `synchronize`). */
export const MIGRATION_MIGRATIONS = [CreateMigrationCheckpoints1810000000000];
