import { CreateMigrationCheckpoints1810000000000 } from './1810000000000-create-migration-checkpoints';

export { CreateMigrationCheckpoints1810000000000 };
