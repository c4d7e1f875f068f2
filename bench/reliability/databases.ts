import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Redis from 'ioredis';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { createTestDatabase, POSTGRES_URL, REDIS_URL, type TestDatabaseKind } from '../../test/support/database';

export type Db = TestDatabaseKind;

/**
 * A database for host processes of a part: a SQLite file in `dir`, or a fresh PostgreSQL schema with
 * Redis (L2 cache, evictions, shared state under a prefix of its own) — the deployment of N replicas.
 */
export interface HostDatabase {
  kind: Db;
  /** DATABASE_* (and REDIS_*) of a host process on it. */
  env: Record<string, string>;
  /** What it is, for the report. */
  label: string;
  /** The first column of the first row of a query (0 when the table does not exist yet). */
  count(sql: string): Promise<number>;
  drop(): Promise<void>;
}

/** The Redis part of a host's environment on PostgreSQL: its own key prefix, removed by `dropRedisPrefix`. */
export function redisEnv(url = REDIS_URL): Record<string, string> {
  return { REDIS_URL: url, REDIS_KEY_PREFIX: `cvrel${randomBytes(4).toString('hex')}:` };
}

/** Deletes every key under a host's prefix (best effort: keys also expire). */
export async function dropRedisPrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const keys = await redis.keys(`${prefix}*`);
    for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
  } catch {
    // Redis gone: nothing to clean.
  } finally {
    redis.disconnect();
  }
}

export async function hostDatabase(kind: Db, dir: string, name = 'host'): Promise<HostDatabase> {
  if (kind === 'sqlite') {
    const path = join(dir, `${name}.sqlite`);
    return {
      kind,
      env: { DATABASE_PATH: path },
      label: 'SQLite',
      count: async (sql) => {
        const db = new DataSource({ type: 'better-sqlite3', database: path, readonly: true });
        try {
          await db.initialize();
          return Number(Object.values((await db.query(sql))[0] as object)[0]);
        } catch (e) {
          // The migration polls before the CLI has created the file or its tables.
          if (/no such table|unable to open|SQLITE_CANTOPEN/i.test((e as Error).message)) return 0;
          throw e;
        } finally {
          if (db.isInitialized) await db.destroy();
        }
      },
      drop: async () => undefined,
    };
  }
  const db = await createTestDatabase('postgres');
  const schema = (db.options as { schema: string }).schema;
  const redis = redisEnv();
  return {
    kind,
    env: { DATABASE_TYPE: 'postgres', DATABASE_URL: POSTGRES_URL, DATABASE_SCHEMA: schema, ...redis },
    label: 'PostgreSQL + Redis',
    count: async (sql) => {
      const c = new Client({ connectionString: POSTGRES_URL, options: `-c search_path=${schema}` });
      try {
        await c.connect();
        return Number(Object.values((await c.query(sql)).rows[0] as object)[0]);
      } catch (e) {
        if ((e as { code?: string }).code === '42P01') return 0; // undefined table: not created yet
        throw e;
      } finally {
        await c.end().catch(() => undefined);
      }
    },
    drop: async () => {
      await db.drop();
      await dropRedisPrefix(redis.REDIS_URL, redis.REDIS_KEY_PREFIX);
    },
  };
}
