import { Injectable } from '@nestjs/common';
import { TransactionRunner } from '@app/common';
import { In, type DataSource } from 'typeorm';
import { MigrationCheckpointEntity } from './migration-checkpoint.entity';

/** Every SQL access to `cv_migration_checkpoints`, through the runner (reads `read`, writes join `run`). */
@Injectable()
export class MigrationCheckpointRepository {
  constructor(private readonly runner: TransactionRunner) {}

  private get repo() {
    return this.runner.manager.getRepository(MigrationCheckpointEntity);
  }

  /** The checkpoints among `legacyIds` of `source`, by legacy id. */
  async find(source: string, legacyIds: string[]): Promise<Map<string, MigrationCheckpointEntity>> {
    if (!legacyIds.length) return new Map();
    const rows = await this.runner.read(() => this.repo.find({ where: { source, legacyId: In(legacyIds) } }));
    return new Map(rows.map((r) => [r.legacyId, r]));
  }

  /** Inserts or updates one checkpoint; joins the ambient transaction (the caller's `runner.run`). */
  save(row: MigrationCheckpointEntity): Promise<void> {
    return this.saveMany([row]);
  }

  /**
   * `save` of many checkpoints: `INSERT … ON CONFLICT (source, legacy_id) DO UPDATE` of up to 100 rows
   * a statement, in plain SQL (a group's checkpoints are written in its commit: TypeORM's upsert
   * builder cost more than the database's work); joins the ambient transaction.
   */
  async saveMany(rows: MigrationCheckpointEntity[]): Promise<void> {
    if (!rows.length) return;
    await this.runner.run(async () => {
      const m = this.runner.manager;
      const { table, columns, update, postgres } = upsertOf(m.connection);
      for (let i = 0; i < rows.length; i += 100) {
        const chunk = rows.slice(i, i + 100);
        let n = 0;
        const tuple = () => `(${COLUMNS.map(() => (postgres ? `$${++n}` : '?')).join(',')})`;
        const values = chunk.map(tuple).join(',');
        await m.query(`INSERT INTO ${table} (${columns}) VALUES ${values} ON CONFLICT (${update.keys}) DO UPDATE SET ${update.set}`, chunk.flatMap(rowValues));
      }
    });
  }

  async countBySource(source: string): Promise<number> {
    return this.runner.read(() => this.repo.count({ where: { source } }));
  }
}

/** Entity properties in INSERT order (the primary key first). */
const COLUMNS = ['source', 'legacyId', 'tenantId', 'integrationId', 'connectionId', 'status', 'credentials', 'migratedAt'] as const satisfies ReadonlyArray<keyof MigrationCheckpointEntity>;
const KEY_COLUMNS = 2;

/** What the entity's transformers would store (`migratedAt` as epoch ms). */
const rowValues = (r: MigrationCheckpointEntity): unknown[] => COLUMNS.map((c) => (c === 'migratedAt' ? r.migratedAt.getTime() : r[c]));

const upserts = new WeakMap<DataSource, { table: string; columns: string; update: { keys: string; set: string }; postgres: boolean }>();

/** Table and column names from the entity metadata, quoted by the driver. */
function upsertOf(ds: DataSource) {
  let u = upserts.get(ds);
  if (!u) {
    const meta = ds.getMetadata(MigrationCheckpointEntity);
    const names = COLUMNS.map((p) => ds.driver.escape(meta.findColumnWithPropertyName(p)!.databaseName));
    u = {
      table: meta.tablePath.split('.').map((t) => ds.driver.escape(t)).join('.'),
      columns: names.join(','),
      update: { keys: names.slice(0, KEY_COLUMNS).join(','), set: names.slice(KEY_COLUMNS).map((c) => `${c} = excluded.${c}`).join(',') },
      postgres: ds.options.type === 'postgres',
    };
    upserts.set(ds, u);
  }
  return u;
}
