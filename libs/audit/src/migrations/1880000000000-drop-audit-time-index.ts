import { MigrationInterface, QueryRunner, TableIndex } from 'typeorm';

/**
 * Drops `IDX_cv_audit_log_time` (occurred_at, id): queries across tenants page the primary key instead.
 * A row's id is UUIDv7 of its occurredAt (since the ids became time-ordered), so id order is
 * (occurredAt, id) order and a time range is an id range. Every audit row — one per value read — then
 * maintains one B-tree fewer.
 */
export class DropAuditTimeIndex1880000000000 implements MigrationInterface {
  name = 'DropAuditTimeIndex1880000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropIndex('cv_audit_log', 'IDX_cv_audit_log_time');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createIndex('cv_audit_log', new TableIndex({ name: 'IDX_cv_audit_log_time', columnNames: ['occurred_at', 'id'] }));
  }
}
