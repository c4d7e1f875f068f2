import type { Logger } from '@nestjs/common';
import { describeError } from '@app/common';
import type { DataSource, EntityManager } from 'typeorm';
import { AUDIT_TABLE } from '../entities/audit-log-entry.entity';
import { type ChainWriter, exclusiveOfSharedConnection } from './chain-writer';
import type { OffLoopAppender } from './off-loop-appender';

/**
 * SQLite: the four query indexes (tenant + time | resource | actor | action) are kept off the request's
 * commit. They are partial on `query_pending IS NULL`, and a row is inserted with `query_pending = 1` (so
 * only into `IDX_cv_audit_log_query_pending`, partial on it, which appends at its end). A value read then commits its row into
 * the table, the primary key, the chain index and that one — 10 WAL frames per batch instead of 23 — and the
 * query indexes take their rows later in large batches (`CATCH_UP_CHUNK_SQL`: each index page written once per
 * batch, not once per commit). The flag is no part of the row's hash: the chain is unchanged.
 *
 * A query must see every row committed before it: it first clears the flag of every pending row (while no append
 * commits) and then queries with `query_pending IS NULL`, which lets SQLite use the partial indexes
 * (`AuditQueries`; verify's checkpoint lookup, under the same gate). A crash loses nothing: a row whose flag was not cleared stays pending until the next catch-up.
 *
 * PostgreSQL keeps plain indexes (an UPDATE there writes a new row version and an entry in every index):
 * the column exists there only for the entity's sake and stays NULL. Rows from before the column are NULL too:
 * indexed, as they were.
 */
export function queryIndexesDeferred(ds: DataSource): boolean {
  // As the migration decides: PostgreSQL, or else SQLite (the only two the audit log writes to).
  return ds.options.type !== 'postgres';
}

/** The query's predicate that lets SQLite use the partial query indexes (alias `a`). */
export const INDEXED_ROWS = 'a.query_pending IS NULL';

/** Every pending row into the query indexes: one statement (atomic), run before a query. */
export const CATCH_UP_ALL_SQL = `UPDATE "${AUDIT_TABLE}" SET "query_pending" = NULL WHERE "query_pending" = 1`;

/** Up to `?` pending rows (the oldest first: the pending index is in rowid order) into the query indexes. */
export const CATCH_UP_CHUNK_SQL =
  `UPDATE "${AUDIT_TABLE}" SET "query_pending" = NULL WHERE rowid IN ` +
  `(SELECT rowid FROM "${AUDIT_TABLE}" WHERE "query_pending" = 1 LIMIT ?)`;

/**
 * Rows appended before a background catch-up runs, and how many it takes at most. A chunk holds SQLite's one
 * writer (~1–3 ms for 256 rows here), so the reads committing behind it wait that long: small enough for the
 * value read's p99, large enough that each index page is written once for many rows.
 */
export const CATCH_UP_CHUNK_ROWS = 256;

/**
 * Keeps the pending rows few while nobody queries: after every `CATCH_UP_CHUNK_ROWS` appended rows, one
 * chunk in a transaction of its own — on the write worker when it runs (off the event loop), else on the
 * main connection — never two at once. While more than a chunk's worth is pending (a batch larger than a
 * chunk, rows appended while one ran), the next chunk follows as soon as one ends, each in a transaction of its
 * own (appends commit in between). A failed chunk is logged and left: the next one, or the next query, takes
 * its rows. None starts once stopped.
 */
export class QueryIndexCatchUp {
  /** Rows appended and not yet counted against a chunk. */
  private appended = 0;
  private running?: Promise<void>;
  private stopped = false;

  /**
   * The writer's: each chunk under the shared connection's gate (no append commits meanwhile), on the write worker
   * when it runs (`offLoop()`), else on the main connection.
   */
  static onConnection(dataSource: DataSource, chains: ChainWriter, offLoop: () => OffLoopAppender | undefined, logger: Logger): QueryIndexCatchUp {
    const chunk = (rows: number | null) =>
      exclusiveOfSharedConnection(chains, async () => {
        const statement = rows === null ? { sql: CATCH_UP_ALL_SQL, params: [] } : { sql: CATCH_UP_CHUNK_SQL, params: [rows] };
        if (!(await offLoop()?.transaction([statement]))) await dataSource.query(statement.sql, statement.params);
      });
    return new QueryIndexCatchUp(chunk, logger);
  }

  constructor(
    /** Moves up to `rows` pending rows (null: every one) into the query indexes, in a transaction of its own. */
    private readonly runChunk: (rows: number | null) => Promise<void>,
    private readonly logger: Logger,
  ) {}

  /** Counts rows just committed; starts a chunk when enough are pending. */
  noteAppended(rows: number): void {
    this.appended += rows;
    if (this.appended >= CATCH_UP_CHUNK_ROWS) this.kick();
  }

  /** Starts a chunk of `rows` unless one runs (null at start: every row a crash left pending). */
  kick(rows: number | null = CATCH_UP_CHUNK_ROWS): void {
    if (this.running || this.stopped) return;
    // What this chunk does not take stays counted (a chunk takes at most `rows`).
    this.appended = rows === null ? 0 : Math.max(0, this.appended - rows);
    this.running = this.runChunk(rows)
      .catch((e: unknown) => this.logger.warn(`Catching up the audit query indexes failed (${describeError(e)}); the next query does`))
      .finally(() => {
        this.running = undefined;
        if (this.appended >= CATCH_UP_CHUNK_ROWS) this.kick();
      });
  }

  /** Starts no more chunks and waits for the one in flight (shutdown). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }
}

/** Within the caller's transaction (or as one statement): every pending row into the query indexes. */
export async function catchUpAll(m: EntityManager): Promise<void> {
  await m.query(CATCH_UP_ALL_SQL);
}
