import { MigrationInterface, QueryRunner, Table } from 'typeorm';

/** `cv_lock_leases` (see LockLeaseEntity), with the QueryRunner API: one migration for SQLite and PostgreSQL. */
export class CreateLockLeases1910000000000 implements MigrationInterface {
  name = 'CreateLockLeases1910000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'cv_lock_leases',
        columns: [
          { name: 'name', type: 'varchar', length: '255', isPrimary: true },
          { name: 'holder', type: 'varchar', length: '64' },
          { name: 'expires_at', type: 'bigint' },
        ],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('cv_lock_leases', true);
  }
}
