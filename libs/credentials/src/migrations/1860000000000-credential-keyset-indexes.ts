import { MigrationInterface, QueryRunner, TableIndex } from 'typeorm';

/**
 * Indexes that end in `id`, so every keyset-paged read (ordered by a column, then id) walks one index
 * in order from its cursor instead of sorting: `listExpiring` (tenant, expires_at, id) and the
 * rotation jobs' cross-tenant expiry scan (expires_at, id). They replace the two-column indexes they
 * extend, so a write maintains as many indexes as before. Measured at 1M rows by bench/scale.bench.ts.
 */
export class CredentialKeysetIndexes1860000000000 implements MigrationInterface {
  name = 'CredentialKeysetIndexes1860000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createIndex('cv_credentials', new TableIndex({ name: 'IDX_cv_credentials_tenant_expires_id', columnNames: ['tenant_id', 'expires_at', 'id'] }));
    await queryRunner.createIndex('cv_credentials', new TableIndex({ name: 'IDX_cv_credentials_expires_id', columnNames: ['expires_at', 'id'] }));
    await queryRunner.dropIndex('cv_credentials', 'IDX_cv_credentials_tenant_expires');
    await queryRunner.dropIndex('cv_credentials', 'IDX_cv_credentials_expires');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createIndex('cv_credentials', new TableIndex({ name: 'IDX_cv_credentials_tenant_expires', columnNames: ['tenant_id', 'expires_at'] }));
    await queryRunner.createIndex('cv_credentials', new TableIndex({ name: 'IDX_cv_credentials_expires', columnNames: ['expires_at'] }));
    await queryRunner.dropIndex('cv_credentials', 'IDX_cv_credentials_expires_id');
    await queryRunner.dropIndex('cv_credentials', 'IDX_cv_credentials_tenant_expires_id');
  }
}
