import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

/**
 * cv_credentials (metadata, never values), cv_credential_versions (version → value-store pointer) and
 * cv_envelope_values (AES-256-GCM ciphertext). Built with the QueryRunner API so the same migration runs
 * on SQLite and PostgreSQL; dates are epoch-ms BIGINTs, JSON is TEXT.
 */
export class CreateCredentialsTables1760000000000 implements MigrationInterface {
  name = 'CreateCredentialsTables1760000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const id = (name = 'id') => ({ name, type: 'varchar', length: '36' });
    const tenant = { name: 'tenant_id', type: 'varchar', length: '128' };
    const ms = (name: string, isNullable = false) => ({ name, type: 'bigint', isNullable });

    await queryRunner.createTable(
      new Table({
        name: 'cv_credentials',
        columns: [
          { ...id(), isPrimary: true },
          tenant,
          { name: 'integration_id', type: 'varchar', length: '128' },
          { name: 'connection_id', type: 'varchar', length: '128' },
          { name: 'type', type: 'varchar', length: '32' },
          { name: 'value_store', type: 'varchar', length: '16' },
          { name: 'current_version', type: 'integer' },
          { name: 'status', type: 'varchar', length: '16' },
          ms('expires_at', true),
          ms('rotated_at', true),
          { name: 'tags', type: 'text' },
          { name: 'value_hint', type: 'varchar', length: '16', isNullable: true },
          { name: 'certificate', type: 'text', isNullable: true },
          { name: 'vault_generation', type: 'integer', default: 0 },
          { name: 'row_version', type: 'integer' },
          ms('created_at'),
          ms('updated_at'),
          ms('deleted_at', true),
          { name: 'created_by', type: 'varchar', length: '256' },
          { name: 'updated_by', type: 'varchar', length: '256' },
        ],
        indices: [
          new TableIndex({
            name: 'UQ_cv_credentials_live',
            columnNames: ['tenant_id', 'integration_id', 'connection_id', 'type'],
            isUnique: true,
            where: `"status" <> 'deleted'`,
          }),
          new TableIndex({ name: 'IDX_cv_credentials_tenant_created', columnNames: ['tenant_id', 'created_at', 'id'] }),
          new TableIndex({ name: 'IDX_cv_credentials_tenant_connection', columnNames: ['tenant_id', 'integration_id', 'connection_id'] }),
          new TableIndex({ name: 'IDX_cv_credentials_tenant_expires', columnNames: ['tenant_id', 'expires_at'] }),
          new TableIndex({ name: 'IDX_cv_credentials_expires', columnNames: ['expires_at'] }),
        ],
      }),
      true,
    );

    await queryRunner.createTable(
      new Table({
        name: 'cv_credential_versions',
        columns: [
          { ...id(), isPrimary: true },
          id('credential_id'),
          tenant,
          { name: 'version', type: 'integer' },
          { name: 'value_store', type: 'varchar', length: '16' },
          { name: 'vault_secret_name', type: 'varchar', length: '127', isNullable: true },
          { name: 'vault_secret_version', type: 'varchar', length: '64', isNullable: true },
          { ...id('envelope_value_id'), isNullable: true },
          { name: 'source_version', type: 'integer', isNullable: true },
          { name: 'value_hint', type: 'varchar', length: '16', isNullable: true },
          ms('expires_at', true),
          { name: 'certificate', type: 'text', isNullable: true },
          ms('created_at'),
          { name: 'created_by', type: 'varchar', length: '256' },
        ],
        indices: [
          new TableIndex({ name: 'UQ_cv_credential_versions_version', columnNames: ['credential_id', 'version'], isUnique: true }),
          new TableIndex({ name: 'IDX_cv_credential_versions_secret', columnNames: ['credential_id', 'vault_secret_name'] }),
        ],
        foreignKeys: [
          {
            name: 'FK_cv_credential_versions_credential',
            columnNames: ['credential_id'],
            referencedTableName: 'cv_credentials',
            referencedColumnNames: ['id'],
            onDelete: 'CASCADE',
          },
        ],
      }),
      true,
    );

    await queryRunner.createTable(
      new Table({
        name: 'cv_envelope_values',
        columns: [
          { ...id(), isPrimary: true },
          tenant,
          id('credential_id'),
          { name: 'version', type: 'integer' },
          { name: 'data_key_name', type: 'varchar', length: '127' },
          { name: 'data_key_version', type: 'varchar', length: '64' },
          { name: 'iv', type: 'varchar', length: '32' },
          { name: 'auth_tag', type: 'varchar', length: '32' },
          { name: 'ciphertext', type: 'text' },
          ms('created_at'),
          ms('updated_at'),
        ],
        indices: [
          new TableIndex({ name: 'IDX_cv_envelope_values_credential', columnNames: ['credential_id'] }),
          new TableIndex({ name: 'IDX_cv_envelope_values_tenant_key', columnNames: ['tenant_id', 'data_key_version'] }),
        ],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('cv_envelope_values', true);
    await queryRunner.dropTable('cv_credential_versions', true);
    await queryRunner.dropTable('cv_credentials', true);
  }
}
