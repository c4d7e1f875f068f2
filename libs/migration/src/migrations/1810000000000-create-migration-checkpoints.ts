import { MigrationInterface, QueryRunner, Table } from 'typeorm';

/** Creates `cv_migration_checkpoints` with the QueryRunner API: one migration for SQLite and PostgreSQL. */
export class CreateMigrationCheckpoints1810000000000 implements MigrationInterface {
  name = 'CreateMigrationCheckpoints1810000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'cv_migration_checkpoints',
        columns: [
          { name: 'source', type: 'varchar', length: '200', isPrimary: true },
          { name: 'legacy_id', type: 'varchar', length: '200', isPrimary: true },
          { name: 'tenant_id', type: 'varchar', length: '128' },
          { name: 'integration_id', type: 'varchar', length: '128' },
          { name: 'connection_id', type: 'varchar', length: '128' },
          { name: 'status', type: 'varchar', length: '16' },
          { name: 'credentials', type: 'integer' },
          { name: 'migrated_at', type: 'bigint' },
        ],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('cv_migration_checkpoints', true);
  }
}
