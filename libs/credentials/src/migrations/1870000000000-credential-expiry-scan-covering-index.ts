import { MigrationInterface, QueryRunner } from 'typeorm';
import { postgresSchema } from '@app/common';

/**
 * PostgreSQL only: the cross-tenant expiry scan's index carries every column the scan reads
 * (`INCLUDE`), so the rotation jobs page through due credentials with index-only scans instead of one
 * random heap read per row (at 1M rows that was most of the scan: bench/scale.bench.ts). SQLite has
 * no INCLUDE and keeps the plain (expires_at, id) index.
 */
export class CredentialExpiryScanCoveringIndex1870000000000 implements MigrationInterface {
  name = 'CredentialExpiryScanCoveringIndex1870000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const schema = postgresSchema(queryRunner);
    if (schema === null) return;
    await queryRunner.query(`DROP INDEX ${schema}"IDX_cv_credentials_expires_id"`);
    await queryRunner.query(
      `CREATE INDEX "IDX_cv_credentials_expires_id" ON ${schema}"cv_credentials" ("expires_at", "id") INCLUDE ("status", "tenant_id", "integration_id", "connection_id", "type")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    const schema = postgresSchema(queryRunner);
    if (schema === null) return;
    await queryRunner.query(`DROP INDEX ${schema}"IDX_cv_credentials_expires_id"`);
    await queryRunner.query(`CREATE INDEX "IDX_cv_credentials_expires_id" ON ${schema}"cv_credentials" ("expires_at", "id")`);
  }
}
