import pg, { Client } from 'pg';
import type { DataSourceOptions } from 'typeorm';
import { postgresDriver, postgresTimeoutOptions, type PersistenceModuleOptions } from '@app/common';
import type { AppConfig } from '../config/app.config';
import { ensureDatabaseDirectory } from './database-directory';
import { HOST_ENTITIES, HOST_MIGRATIONS } from './schema';

/** Marks SQLite options whose DataSource gets a WAL checkpoint worker (DATABASE_SQLITE_WAL_WORKER). */
export const SQLITE_WAL_WORKER = 'cvSqliteWalWorker';

/** PersistenceModule's options of this process: the lock sessions of the configured database, the configured handler timeout, the rest of the outbox as given. */
export function persistenceOptions(config: AppConfig, outbox: PersistenceModuleOptions['outbox']): PersistenceModuleOptions {
  return {
    outbox: { handlerTimeoutMs: config.outbox.handlerTimeoutMs, ...outbox },
    locks:
      config.database.type === 'postgres'
        ? { maxSessions: config.database.lockSessions, heartbeatMs: config.database.lockHeartbeatMs, heartbeatTimeoutMs: config.database.lockHeartbeatTimeoutMs }
        : {},
  };
}

/**
 * TypeORM options for the configured database. The schema comes from the libs' migrations, run at
 * start; `synchronize` stays off so production schemas only change through reviewed migrations.
 */
export function databaseOptions(config: AppConfig): DataSourceOptions {
  const common = {
    entities: HOST_ENTITIES,
    migrations: HOST_MIGRATIONS,
    migrationsRun: true,
    migrationsTableName: 'cv_migrations',
    synchronize: false,
    logging: false,
  } as const;
  if (config.database.type === 'sqlite') {
    ensureDatabaseDirectory(config.database.path);
    const synchronous = config.database.synchronous === 'normal' ? 'NORMAL' : 'FULL';
    const { walAutocheckpoint } = config.database;
    return {
      ...common,
      type: 'better-sqlite3',
      database: config.database.path,
      enableWAL: true,
      // Read by initializeHostDataSource (TypeORM ignores unknown options).
      ...(config.database.walWorker ? { [SQLITE_WAL_WORKER]: true } : {}),
      // Explicit, so durability does not depend on how the driver's SQLite was compiled.
      prepareDatabase: (db: { pragma(source: string): unknown }) => {
        db.pragma(`synchronous = ${synchronous}`);
        // Copied by the audit's write worker (SqliteWriteWorker), whose commits trigger most checkpoints.
        db.pragma(`wal_autocheckpoint = ${walAutocheckpoint}`);
      },
    };
  }
  const { url, schema, poolSize, connectTimeoutMs, queryTimeoutMs, statementTimeoutMs, idleInTransactionTimeoutMs, probeAfterMs } = config.database;
  return {
    ...common,
    type: 'postgres',
    // A request that waits in vain for a free connection of a full pool gets 503 DATABASE_POOL_EXHAUSTED naming DATABASE_POOL_SIZE.
    driver: postgresDriver(pg, { probeAfterMs }),
    url,
    schema,
    extra: {
      max: poolSize,
      // A connection attempt the server never answers (a stalled or partitioned PostgreSQL) is given up
      // and its pool slot freed, so the replica recovers once PostgreSQL does (without it, each stuck
      // attempt held a slot for good: readiness 503 forever). Also how long a caller waits for a free slot.
      connectionTimeoutMillis: connectTimeoutMs,
      // Dead peers of established connections are found by TCP keepalive (the OS's probes) and dropped.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      // A peer that stalls while its kernel still ACKs (a hung server, a stalled proxy or pooler) never trips
      // keepalive: a query unanswered past its deadline closes its connection (a typed 503, the slot freed), and
      // PostgreSQL bounds statements and lock waits, and ends transactions left idle (their locks with them).
      ...postgresTimeoutOptions(Client, { queryTimeoutMs, statementTimeoutMs, idleInTransactionTimeoutMs }),
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
    },
  };
}
