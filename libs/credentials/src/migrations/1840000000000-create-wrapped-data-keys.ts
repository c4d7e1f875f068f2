import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

/** cv_wrapped_data_keys: per-tenant data keys wrapped by a vault key (`envelope.keyEncryptionKey`). */
export class CreateWrappedDataKeys1840000000000 implements MigrationInterface {
  name = 'CreateWrappedDataKeys1840000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'cv_wrapped_data_keys',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'tenant_id', type: 'varchar', length: '128' },
          { name: 'version', type: 'varchar', length: '64' },
          { name: 'kek_name', type: 'varchar', length: '127' },
          { name: 'kek_version', type: 'varchar', length: '64' },
          { name: 'wrapped_key', type: 'text' },
          { name: 'created_at', type: 'bigint' },
          { name: 'updated_at', type: 'bigint' },
        ],
        indices: [
          new TableIndex({ name: 'UQ_cv_wrapped_data_keys_tenant_version', columnNames: ['tenant_id', 'version'], isUnique: true }),
          new TableIndex({ name: 'IDX_cv_wrapped_data_keys_tenant_created', columnNames: ['tenant_id', 'created_at'] }),
        ],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('cv_wrapped_data_keys', true);
  }
}
