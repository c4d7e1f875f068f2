import type { MixedList } from 'typeorm';
import { AUDIT_ENTITIES, AUDIT_MIGRATIONS } from '@app/audit';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS } from '@app/common';
import { CREDENTIALS_ENTITIES, CREDENTIALS_MIGRATIONS } from '@app/credentials';
import { ROTATION_ENTITIES, ROTATION_MIGRATIONS } from '@app/rotation';
import { MIGRATION_ENTITIES, MIGRATION_MIGRATIONS } from '@app/migration';

/**
 * Every lib's entities and migrations. The libs own their schema; the host only lists them here
 * (libs never call TypeOrmModule.forRoot themselves).
 */
export const HOST_ENTITIES: MixedList<any> = [...AUDIT_ENTITIES, ...CREDENTIALS_ENTITIES, ...OUTBOX_ENTITIES, ...ROTATION_ENTITIES, ...MIGRATION_ENTITIES];
export const HOST_MIGRATIONS: MixedList<any> = [...AUDIT_MIGRATIONS, ...CREDENTIALS_MIGRATIONS, ...OUTBOX_MIGRATIONS, ...ROTATION_MIGRATIONS, ...MIGRATION_MIGRATIONS];
