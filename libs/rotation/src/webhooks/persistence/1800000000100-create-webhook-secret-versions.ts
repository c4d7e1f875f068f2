import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

/** Creates `cv_webhook_secret_versions` with the QueryRunner API (one migration for SQLite and PostgreSQL). */
export class CreateWebhookSecretVersions1800000000100 implements MigrationInterface {
  name = 'CreateWebhookSecretVersions1800000000100';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'cv_webhook_secret_versions',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'tenant_id', type: 'varchar', length: '128' },
          { name: 'integration_id', type: 'varchar', length: '128' },
          { name: 'connection_id', type: 'varchar', length: '128' },
          { name: 'credential_id', type: 'varchar', length: '36' },
          { name: 'credential_version', type: 'integer', isNullable: true },
          { name: 'state', type: 'varchar', length: '16' },
          { name: 'staging_credential_id', type: 'varchar', length: '36', isNullable: true },
          { name: 'current_since', type: 'bigint', isNullable: true },
          { name: 'live_until', type: 'bigint', isNullable: true },
          { name: 'push_started_at', type: 'bigint', isNullable: true },
          { name: 'attempts', type: 'integer', default: 0 },
          { name: 'last_error', type: 'varchar', length: '200', isNullable: true },
          { name: 'created_at', type: 'bigint' },
          { name: 'updated_at', type: 'bigint' },
        ],
      }),
      true,
    );
    const table = 'cv_webhook_secret_versions';
    // The database, not the code, guarantees one current and one pending secret per credential.
    await queryRunner.createIndex(table, new TableIndex({ name: 'UQ_cv_whs_versions_current', columnNames: ['credential_id'], isUnique: true, where: `"state" = 'current'` }));
    await queryRunner.createIndex(table, new TableIndex({ name: 'UQ_cv_whs_versions_pending', columnNames: ['credential_id'], isUnique: true, where: `"state" = 'pending'` }));
    await queryRunner.createIndex(table, new TableIndex({ name: 'IDX_cv_whs_versions_credential', columnNames: ['credential_id', 'state'] }));
    await queryRunner.createIndex(table, new TableIndex({ name: 'IDX_cv_whs_versions_state_live_until', columnNames: ['state', 'live_until'] }));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('cv_webhook_secret_versions', true);
  }
}
