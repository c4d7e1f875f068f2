import { ADVISORY_LOCK_NAMESPACES, advisoryLockKey, TransactionRunner } from '@app/common';
import { NotificationSettingsEntity } from './notification.entities';

/** Every SQL access to `cv_notification_settings`, on the host's TransactionRunner. */
export class NotificationSettingsRepository {
  constructor(private readonly runner: TransactionRunner) {}

  find(tenantId: string): Promise<NotificationSettingsEntity | null> {
    return this.runner.read(() => this.runner.manager.findOne(NotificationSettingsEntity, { where: { tenantId } }));
  }

  /**
   * The row, locked until the caller's transaction ends (inside `runner.run`): on PostgreSQL the tenant's
   * transaction-level advisory lock — also when there is no row yet, which `FOR UPDATE` cannot lock: a tenant's
   * first updates on several replicas would each store the signing credential, and the losers' unique violation
   * aborted their transactions (500) — then `FOR UPDATE`; so a concurrent update waits and then reads the committed
   * row. A SQLite transaction already excludes every other.
   */
  async findForUpdate(tenantId: string): Promise<NotificationSettingsEntity | null> {
    const postgres = this.runner.manager.connection.options.type === 'postgres';
    if (postgres) await this.runner.manager.query('SELECT pg_advisory_xact_lock($1::bigint)', [advisoryLockKey(tenantId, ADVISORY_LOCK_NAMESPACES.notificationSettings)]);
    return this.runner.manager.findOne(NotificationSettingsEntity, { where: { tenantId }, ...(postgres ? { lock: { mode: 'pessimistic_write' as const } } : {}) });
  }

  /** Inserts the tenant's first row; false when one exists already (a concurrent first update won). */
  insert(row: NotificationSettingsEntity): Promise<boolean> {
    return this.runner.run(async () => {
      await this.runner.manager.createQueryBuilder().insert().into(NotificationSettingsEntity).values(row).orIgnore().execute();
      // The drivers report affected rows of INSERT … ON CONFLICT DO NOTHING differently: read what is there.
      const stored = await this.runner.manager.findOne(NotificationSettingsEntity, { where: { tenantId: row.tenantId } });
      return stored !== null && stored.rowVersion === row.rowVersion && stored.updatedAt.getTime() === row.updatedAt.getTime() && stored.updatedBy === row.updatedBy;
    });
  }

  /** Compare-and-set on `row_version`: false when another update got there first. */
  update(row: NotificationSettingsEntity, expectedRowVersion: number): Promise<boolean> {
    const { tenantId, createdAt: _c, ...changes } = row;
    return this.runner.run(async () => {
      const result = await this.runner.manager
        .createQueryBuilder()
        .update(NotificationSettingsEntity)
        .set(changes)
        .where('tenant_id = :tenantId AND row_version = :expected', { tenantId, expected: expectedRowVersion })
        .execute();
      return result.affected === 1;
    });
  }
}
