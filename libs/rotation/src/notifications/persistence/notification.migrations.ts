import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

/** Both notification tables, with the QueryRunner API so one migration serves SQLite and PostgreSQL. */
export class CreateNotifications1800000003200 implements MigrationInterface {
  name = 'CreateNotifications1800000003200';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'cv_notification_deliveries',
        columns: [
          { name: 'event_id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'channel', type: 'varchar', length: '32', isPrimary: true },
          { name: 'tenant_id', type: 'varchar', length: '128' },
          { name: 'event_name', type: 'varchar', length: '128' },
          { name: 'status', type: 'varchar', length: '16' },
          { name: 'attempts', type: 'integer', default: 0 },
          { name: 'next_attempt_at', type: 'bigint' },
          { name: 'last_error', type: 'varchar', length: '200', isNullable: true },
          { name: 'created_at', type: 'bigint' },
          { name: 'updated_at', type: 'bigint' },
          { name: 'finished_at', type: 'bigint', isNullable: true },
        ],
        indices: [
          new TableIndex({ name: 'IDX_cv_notification_deliveries_tenant', columnNames: ['tenant_id', 'created_at'] }),
          new TableIndex({ name: 'IDX_cv_notification_deliveries_status', columnNames: ['status'] }),
        ],
      }),
      true,
    );
    await queryRunner.createTable(
      new Table({
        name: 'cv_notification_settings',
        columns: [
          { name: 'tenant_id', type: 'varchar', length: '128', isPrimary: true },
          { name: 'webhook_url', type: 'varchar', length: '2048', isNullable: true },
          { name: 'webhook_secret_credential_id', type: 'varchar', length: '36', isNullable: true },
          { name: 'email_recipients', type: 'text' },
          { name: 'row_version', type: 'integer', default: 1 },
          { name: 'created_at', type: 'bigint' },
          { name: 'updated_at', type: 'bigint' },
          { name: 'updated_by', type: 'varchar', length: '200' },
        ],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('cv_notification_settings', true);
    await queryRunner.dropTable('cv_notification_deliveries', true);
  }
}

/** Pruning reads finished rows by `finished_at`. */
export class IndexNotificationDeliveriesFinished1800000003201 implements MigrationInterface {
  name = 'IndexNotificationDeliveriesFinished1800000003201';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createIndex('cv_notification_deliveries', new TableIndex({ name: 'IDX_cv_notification_deliveries_finished', columnNames: ['finished_at'] }));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropIndex('cv_notification_deliveries', 'IDX_cv_notification_deliveries_finished');
  }
}
