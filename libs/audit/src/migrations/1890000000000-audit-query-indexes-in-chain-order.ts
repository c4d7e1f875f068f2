import { MigrationInterface, QueryRunner, TableIndex } from 'typeorm';

/** The query indexes whose last column was `occurred_at`, and what replaces each. */
const REPLACED: Array<{ old: string; name: string; column: string }> = [
  { old: 'IDX_cv_audit_log_tenant_resource_time', name: 'IDX_cv_audit_log_tenant_resource_seq', column: 'resource' },
  { old: 'IDX_cv_audit_log_tenant_actor_time', name: 'IDX_cv_audit_log_tenant_actor_seq', column: 'actor_id' },
  { old: 'IDX_cv_audit_log_tenant_action_time', name: 'IDX_cv_audit_log_tenant_action_seq', column: 'action' },
];

/**
 * A tenant's rows are queried in chain order (`ORDER BY sequence`), but the (tenant, resource | actor | action)
 * indexes were in time order: a page of "who read this credential" sorted ALL of that credential's rows first
 * (SQLite chose that index and a temporary B-tree: ~240 ms per page for a credential with 150,000 reads, every
 * page again). In chain order the index hands out the page directly; `occurred_at` stays as the last column, so a
 * `from`/`to` bound is checked in the index without reading the rows it skips. Same number of B-trees, so an
 * audit row costs the same to write.
 *
 * On a large PostgreSQL log, CREATE INDEX blocks writes to the table while it builds (and with them every audited
 * read): build the three indexes beforehand with `CREATE INDEX CONCURRENTLY` under these names and this migration
 * keeps them (docs/OPERATIONS.md, "Upgrading").
 */
export class AuditQueryIndexesInChainOrder1890000000000 implements MigrationInterface {
  name = 'AuditQueryIndexesInChainOrder1890000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const table = await queryRunner.getTable('cv_audit_log');
    for (const { old, name, column } of REPLACED) {
      if (!table?.indices.some((i) => i.name === name)) {
        await queryRunner.createIndex('cv_audit_log', new TableIndex({ name, columnNames: ['tenant_id', column, 'sequence', 'occurred_at'] }));
      }
      if (table?.indices.some((i) => i.name === old)) await queryRunner.dropIndex('cv_audit_log', old);
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const { old, name, column } of REPLACED) {
      await queryRunner.createIndex('cv_audit_log', new TableIndex({ name: old, columnNames: ['tenant_id', column, 'occurred_at'] }));
      await queryRunner.dropIndex('cv_audit_log', name);
    }
  }
}
