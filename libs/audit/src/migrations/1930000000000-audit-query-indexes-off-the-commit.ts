import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/** The four query indexes and their columns (as the earlier migrations left them). */
const QUERY_INDEXES: Array<{ name: string; columns: string }> = [
  { name: 'IDX_cv_audit_log_tenant_time', columns: '"tenant_id", "occurred_at", "id"' },
  { name: 'IDX_cv_audit_log_tenant_resource_seq', columns: '"tenant_id", "resource", "sequence", "occurred_at"' },
  { name: 'IDX_cv_audit_log_tenant_actor_seq', columns: '"tenant_id", "actor_id", "sequence", "occurred_at"' },
  { name: 'IDX_cv_audit_log_tenant_action_seq', columns: '"tenant_id", "action", "sequence", "occurred_at"' },
];
const PENDING = 'IDX_cv_audit_log_query_pending';

/**
 * SQLite: the audit log's four query indexes leave the request's commit (internal/query-index-catch-up.ts).
 * They become partial on `query_pending IS NULL`; a new row is inserted with `query_pending = 1`, so it goes
 * only into `IDX_cv_audit_log_query_pending`, and is moved into them in batches before each query and in the
 * background. The indexes were the whole of the audit's overhead on a SQLite value read (docs/BENCHMARKS.md,
 * twelfth round). Existing rows are NULL (indexed): nothing is rewritten, only the four indexes rebuilt.
 *
 * PostgreSQL: only the column (NULL, never set; adding it is instant): an UPDATE there would write a new row
 * version into every index, so its query indexes stay as they are.
 */
export class AuditQueryIndexesOffTheCommit1930000000000 implements MigrationInterface {
  name = 'AuditQueryIndexesOffTheCommit1930000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type === 'postgres') {
      await queryRunner.addColumn('cv_audit_log', new TableColumn({ name: 'query_pending', type: 'integer', isNullable: true }));
      return;
    }
    // Plain SQL: TypeORM's addColumn rebuilds a SQLite table (a copy of the whole log); ALTER TABLE does not.
    await queryRunner.query(`ALTER TABLE "cv_audit_log" ADD COLUMN "query_pending" integer`);
    for (const { name, columns } of QUERY_INDEXES) {
      await queryRunner.query(`DROP INDEX "${name}"`);
      await queryRunner.query(`CREATE INDEX "${name}" ON "cv_audit_log" (${columns}) WHERE "query_pending" IS NULL`);
    }
    await queryRunner.query(`CREATE INDEX "${PENDING}" ON "cv_audit_log" ("query_pending") WHERE "query_pending" = 1`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.options.type === 'postgres') {
      await queryRunner.dropColumn('cv_audit_log', 'query_pending');
      return;
    }
    await queryRunner.query(`DROP INDEX "${PENDING}"`);
    for (const { name, columns } of QUERY_INDEXES) {
      await queryRunner.query(`DROP INDEX "${name}"`);
      await queryRunner.query(`CREATE INDEX "${name}" ON "cv_audit_log" (${columns})`);
    }
    await queryRunner.query(`ALTER TABLE "cv_audit_log" DROP COLUMN "query_pending"`);
  }
}
