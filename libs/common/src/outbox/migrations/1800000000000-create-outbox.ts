import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

/**
 * Creates `cv_outbox` with the QueryRunner API, so one migration serves SQLite and PostgreSQL (the
 * table lands in the DataSource's schema, like the other libs' tables). Dates are epoch-ms BIGINTs.
 */
export class CreateOutbox1800000000000 implements MigrationInterface {
  name = 'CreateOutbox1800000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'cv_outbox',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'name', type: 'varchar', length: '128' },
          { name: 'tenant_id', type: 'varchar', length: '128', isNullable: true },
          { name: 'payload', type: 'text' },
          { name: 'created_at', type: 'bigint' },
          { name: 'available_at', type: 'bigint' },
          { name: 'attempts', type: 'integer', default: 0 },
          { name: 'last_error', type: 'varchar', length: '200', isNullable: true },
          { name: 'delivered_at', type: 'bigint', isNullable: true },
        ],
        indices: [
          // The dispatcher's claim: due, undelivered rows, oldest first. Partial, so delivered rows cost nothing.
          new TableIndex({ name: 'IDX_cv_outbox_due', columnNames: ['available_at', 'created_at'], where: '"delivered_at" IS NULL' }),
          // Pruning of delivered rows.
          new TableIndex({ name: 'IDX_cv_outbox_delivered', columnNames: ['delivered_at'], where: '"delivered_at" IS NOT NULL' }),
        ],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('cv_outbox', true);
  }
}
