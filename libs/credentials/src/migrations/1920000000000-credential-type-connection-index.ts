import { MigrationInterface, QueryRunner } from 'typeorm';
import { postgresSchema } from './postgres-schema';

/**
 * (type, connection_id) of the live credentials, for counts by connection-id prefix across tenants
 * (`countLiveByConnectionPrefix`: the rotation lib's pending-values gauge), which otherwise read every credential.
 * Partial, as the live-key index is: deleted rows (every pending value a rotation dropped) stay out of it. On
 * PostgreSQL the column is collated "C": a prefix is a byte-order range, which the database's collation may not be.
 */
export class CredentialTypeConnectionIndex1920000000000 implements MigrationInterface {
  name = 'CredentialTypeConnectionIndex1920000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const schema = postgresSchema(queryRunner);
    const connection = schema === null ? '"connection_id"' : '"connection_id" COLLATE "C"';
    await queryRunner.query(`CREATE INDEX "IDX_cv_credentials_type_connection" ON ${schema ?? ''}"cv_credentials" ("type", ${connection}) WHERE "status" <> 'deleted'`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX ${postgresSchema(queryRunner) ?? ''}"IDX_cv_credentials_type_connection"`);
  }
}
