import { Client } from 'pg';

/** PostgreSQL for `--database postgres` benchmark runs. */
export const BENCH_POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Runs one admin statement on its own connection. */
export async function pgAdmin(sql: string, url = BENCH_POSTGRES_URL): Promise<void> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** An empty schema named `name` (dropped first if a crashed run left it). */
export async function freshSchema(name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain schema name: ${name}`);
  await pgAdmin(`DROP SCHEMA IF EXISTS ${name} CASCADE; CREATE SCHEMA ${name}`);
  return name;
}

export const dropSchema = (name: string): Promise<void> => pgAdmin(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
