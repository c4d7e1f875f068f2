import { MigrationInterface, QueryRunner, Table } from 'typeorm';

/** `cv_job_runs` (see JobRunEntity), with the QueryRunner API: one migration for SQLite and PostgreSQL. */
export class CreateJobRuns1900000000000 implements MigrationInterface {
  name = 'CreateJobRuns1900000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'cv_job_runs',
        columns: [
          { name: 'name', type: 'varchar', length: '128', isPrimary: true },
          { name: 'last_success_at', type: 'bigint' },
        ],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('cv_job_runs', true);
  }
}
