import { MigrationInterface, QueryRunner } from 'typeorm';
import { postgresSchema } from '@app/common';

const INDEX = '"IDX_cv_credentials_tenant_type_changed"';

/**
 * (tenant_id, type, last change, created_at, id) of the active credentials, the last change being
 * `COALESCE(rotated_at, created_at)`: the rotation lib's due list (`CredentialListRepository.pageByLastChange`) reads a
 * tenant's credentials last changed before a policy's threshold, least recently changed first, from this index's
 * range instead of every active credential of the tenant. Partial: only `status = 'active'` rows are ever due.
 *
 * On a large PostgreSQL table, CREATE INDEX blocks writes to `cv_credentials` while it builds: build it beforehand
 * with `CREATE INDEX CONCURRENTLY` under this name and this migration keeps it (docs/OPERATIONS.md, "Upgrading").
 * One such build that failed leaves an invalid index (never used): that one is dropped and built here.
 */
export class CredentialLastChangeIndex1970000000000 implements MigrationInterface {
  name = 'CredentialLastChangeIndex1970000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const schema = postgresSchema(queryRunner);
    if (schema !== null) {
      const found = (await queryRunner.query(`SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)`, [`${schema}${INDEX}`])) as Array<{ valid: boolean }>;
      if (found[0]?.valid === false) await queryRunner.query(`DROP INDEX ${schema}${INDEX}`);
    }
    await queryRunner.query(
      `CREATE INDEX IF NOT EXISTS ${INDEX} ON ${schema ?? ''}"cv_credentials" ("tenant_id", "type", (COALESCE("rotated_at", "created_at")), "created_at", "id") WHERE "status" = 'active'`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX ${postgresSchema(queryRunner) ?? ''}${INDEX}`);
  }
}
