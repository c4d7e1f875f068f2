import type { QueryRunner } from 'typeorm';

/** `"schema".` (or empty for the search path) on PostgreSQL; null on any other database. */
export function postgresSchema(queryRunner: QueryRunner): string | null {
  const options = queryRunner.connection.driver.options as { type: string; schema?: string };
  if (options.type !== 'postgres') return null;
  return options.schema ? `"${options.schema.replace(/"/g, '""')}".` : '';
}
