import { MigrationInterface, QueryRunner } from 'typeorm';
import { postgresSchema } from '@app/common';

const INDEX = '"IDX_cv_credentials_type_connection"';

/**
 * (type, connection_id) of the live credentials, for counts by connection-id prefix across tenants
 * (`countLiveByConnectionPrefix`: the rotation lib's pending-values gauge), which otherwise read every credential.
 * Partial, as the live-key index is: deleted rows (every pending value a rotation dropped) stay out of it. On
 * PostgreSQL the column is collated "C": a prefix is a byte-order range, which the database's collation may not be.
 *
 * On a large PostgreSQL table, CREATE INDEX blocks writes to `cv_credentials` while it builds: build it beforehand
 * with `CREATE INDEX CONCURRENTLY` under this name and this migration keeps it (docs/OPERATIONS.md, "Upgrading").
 * One such build that failed leaves an invalid index (never used): that one is dropped and built here.
 */
export class CredentialTypeConnectionIndex1920000000000 implements MigrationInterface {
  name = 'CredentialTypeConnectionIndex1920000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const schema = postgresSchema(queryRunner);
    if (schema !== null) {
      const found = (await queryRunner.query(`SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)`, [`${schema}${INDEX}`])) as Array<{ valid: boolean }>;
      if (found[0]?.valid === false) await queryRunner.query(`DROP INDEX ${schema}${INDEX}`);
    }
    const connection = schema === null ? '"connection_id"' : '"connection_id" COLLATE "C"';
    await queryRunner.query(`CREATE INDEX IF NOT EXISTS ${INDEX} ON ${schema ?? ''}"cv_credentials" ("type", ${connection}) WHERE "status" <> 'deleted'`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX ${postgresSchema(queryRunner) ?? ''}${INDEX}`);
  }
}
