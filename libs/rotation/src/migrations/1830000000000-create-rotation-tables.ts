import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

/**
 * cv_rotation_policies, cv_rotation_notices and cv_rotation_history. QueryRunner API, so the same
 * migration runs on SQLite and PostgreSQL; dates are epoch-ms BIGINTs.
 */
export class CreateRotationTables1830000000000 implements MigrationInterface {
  name = 'CreateRotationTables1830000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const tenant = { name: 'tenant_id', type: 'varchar', length: '128' };
    const ms = (name: string) => ({ name, type: 'bigint' });
    await queryRunner.createTable(
      new Table({
        name: 'cv_rotation_policies',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          tenant,
          { name: 'level', type: 'varchar', length: '16' },
          { name: 'target', type: 'varchar', length: '128' },
          { name: 'credential_type', type: 'varchar', length: '32' },
          { name: 'rotate_after_days', type: 'integer', isNullable: true },
          { name: 'warn_before_days', type: 'integer', isNullable: true },
          { name: 'rotation', type: 'varchar', length: '16', isNullable: true },
          ms('created_at'),
          ms('updated_at'),
          { name: 'updated_by', type: 'varchar', length: '256' },
          { name: 'row_version', type: 'integer' },
        ],
        indices: [new TableIndex({ name: 'UQ_cv_rotation_policies_scope', columnNames: ['tenant_id', 'level', 'target', 'credential_type'], isUnique: true })],
      }),
      true,
    );
    await queryRunner.createTable(
      new Table({
        name: 'cv_rotation_notices',
        columns: [
          { name: 'credential_id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'version', type: 'integer', isPrimary: true },
          { name: 'notice', type: 'varchar', length: '32', isPrimary: true },
          tenant,
          { name: 'event_id', type: 'varchar', length: '36', isNullable: true },
          ms('created_at'),
        ],
        indices: [new TableIndex({ name: 'IDX_cv_rotation_notices_tenant', columnNames: ['tenant_id', 'created_at'] })],
      }),
      true,
    );
    await queryRunner.createTable(
      new Table({
        name: 'cv_rotation_history',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          tenant,
          { name: 'credential_id', type: 'varchar', length: '36' },
          { name: 'action', type: 'varchar', length: '16' },
          { name: 'method', type: 'varchar', length: '16' },
          { name: 'from_version', type: 'integer', isNullable: true },
          { name: 'to_version', type: 'integer', isNullable: true },
          { name: 'actor', type: 'varchar', length: '256' },
          { name: 'reason', type: 'varchar', length: '512', isNullable: true },
          { name: 'severity', type: 'varchar', length: '16', isNullable: true },
          ms('created_at'),
        ],
        indices: [new TableIndex({ name: 'IDX_cv_rotation_history_credential', columnNames: ['tenant_id', 'credential_id', 'created_at'] })],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('cv_rotation_history', true);
    await queryRunner.dropTable('cv_rotation_notices', true);
    await queryRunner.dropTable('cv_rotation_policies', true);
  }
}
