import type { DataSource, EntityManager, EntityTarget, ObjectLiteral } from 'typeorm';
import type { ColumnMetadata } from 'typeorm/metadata/ColumnMetadata';

/** Rows per statement: 100 × 20 columns stays far below SQLite's bound-parameter limit (32,766). */
export const INSERT_CHUNK = 100;

interface Shape {
  columns: ColumnMetadata[];
  head: string;
  postgres: boolean;
  /** Statement text per row count: a full chunk reuses one text (and prepared statement). */
  byRows: Map<number, string>;
}

const shapes = new WeakMap<DataSource, Map<EntityTarget<ObjectLiteral>, Shape>>();

function shapeOf(ds: DataSource, entity: EntityTarget<ObjectLiteral>): Shape {
  let perDs = shapes.get(ds);
  if (!perDs) shapes.set(ds, (perDs = new Map()));
  let s = perDs.get(entity);
  if (!s) {
    const meta = ds.getMetadata(entity);
    const esc = (name: string) => ds.driver.escape(name);
    const columns = meta.columns.filter((c) => c.isInsert);
    s = {
      columns,
      // Schema-qualified when configured, like TypeORM's own statement.
      head: `INSERT INTO ${meta.tablePath.split('.').map(esc).join('.')} (${columns.map((c) => esc(c.databaseName)).join(', ')}) VALUES `,
      postgres: ds.options.type === 'postgres',
      byRows: new Map(),
    };
    perDs.set(entity, s);
  }
  return s;
}

function statement(s: Shape, rows: number): string {
  let sql = s.byRows.get(rows);
  if (sql === undefined) {
    const width = s.columns.length;
    const tuples: string[] = [];
    for (let r = 0; r < rows; r++) tuples.push(`(${s.columns.map((_, c) => (s.postgres ? `$${r * width + c + 1}` : '?')).join(', ')})`);
    s.byRows.set(rows, (sql = s.head + tuples.join(', ')));
  }
  return sql;
}

/**
 * Inserts complete new rows of `entity` with fixed multi-row SQL and bound parameters, in `m`'s
 * transaction: TypeORM's insert builder (statement building, parameter naming) cost more CPU than
 * the database's work for a migration's batches. Values go through the columns' transformers and the
 * driver's persistence conversion, as TypeORM's builder does; a property left undefined gets the
 * column's literal default or NULL. Nothing is read back.
 */
export async function insertRows<T extends ObjectLiteral>(m: EntityManager, entity: EntityTarget<T>, rows: readonly T[]): Promise<void> {
  const ds = m.connection;
  const s = shapeOf(ds, entity);
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    const chunk = rows.slice(i, i + INSERT_CHUNK);
    const params: unknown[] = [];
    for (const row of chunk) {
      for (const c of s.columns) {
        // The driver applies the column's transformer, as in TypeORM's builder.
        const v: unknown = ds.driver.preparePersistentValue(c.getEntityValue(row), c);
        params.push(v === undefined ? defaultOf(c) : v);
      }
    }
    await m.query(statement(s, chunk.length), params);
  }
}

function defaultOf(c: ColumnMetadata): unknown {
  const d: unknown = c.default;
  return typeof d === 'number' || typeof d === 'string' || typeof d === 'boolean' ? d : null;
}
