import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

/** Creates `cv_audit_log` with the QueryRunner API, so the one migration serves SQLite and PostgreSQL. */
export class CreateAuditLog1790000000000 implements MigrationInterface {
  name = 'CreateAuditLog1790000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'cv_audit_log',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'tenant_id', type: 'varchar', length: '128' },
          { name: 'sequence', type: 'bigint' },
          { name: 'occurred_at', type: 'bigint' },
          { name: 'action', type: 'varchar', length: '64' },
          { name: 'resource', type: 'varchar', length: '512' },
          { name: 'actor_id', type: 'varchar', length: '256' },
          { name: 'actor_ip', type: 'varchar', length: '64', isNullable: true },
          { name: 'user_agent', type: 'varchar', length: '512', isNullable: true },
          { name: 'result', type: 'varchar', length: '16' },
          { name: 'error_code', type: 'varchar', length: '64', isNullable: true },
          { name: 'duration_ms', type: 'integer', isNullable: true },
          { name: 'correlation_id', type: 'varchar', length: '128', isNullable: true },
          { name: 'details', type: 'text', isNullable: true },
          { name: 'previous_hash', type: 'varchar', length: '64' },
          { name: 'hash', type: 'varchar', length: '64' },
        ],
      }),
      true,
    );
    const indices: Array<[string, string[], boolean]> = [
      // The chain: one row per (tenant, sequence); also serves head lookups, verify and prune.
      ['UQ_cv_audit_log_tenant_sequence', ['tenant_id', 'sequence'], true],
      ['IDX_cv_audit_log_tenant_time', ['tenant_id', 'occurred_at', 'id'], false],
      ['IDX_cv_audit_log_tenant_resource_time', ['tenant_id', 'resource', 'occurred_at'], false],
      ['IDX_cv_audit_log_tenant_actor_time', ['tenant_id', 'actor_id', 'occurred_at'], false],
      ['IDX_cv_audit_log_tenant_action_time', ['tenant_id', 'action', 'occurred_at'], false],
      ['IDX_cv_audit_log_time', ['occurred_at', 'id'], false],
    ];
    for (const [name, columnNames, isUnique] of indices) {
      await queryRunner.createIndex('cv_audit_log', new TableIndex({ name, columnNames, isUnique }));
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('cv_audit_log', true);
  }
}
