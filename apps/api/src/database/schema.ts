import type { MixedList } from 'typeorm';

/**
 * Every lib's entities and migrations, in dependency order. The libs own their schema; the host only
 * lists them here (libs never call TypeOrmModule.forRoot themselves).
 */
export const HOST_ENTITIES: MixedList<any> = [];
export const HOST_MIGRATIONS: MixedList<any> = [];
