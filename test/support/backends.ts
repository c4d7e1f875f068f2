import { join } from 'node:path';
import { variablesOfBackendsNotInUse } from '../../apps/api/src/config/config-rules';

/*
 * The host refuses a variable of a backend not in use (the embedded vault's beside KEY_VAULT_URL, SQLite's on
 * PostgreSQL, and the reverse): a test's environment names only those in use.
 */

/** A test process's own SQLite file and embedded vault (on a free port) under `dir`, each unless `env` uses another. */
export function embeddedBackends(env: Record<string, string | undefined>, dir: string, suffix = ''): Record<string, string> {
  return {
    ...(env.KEY_VAULT_URL ? {} : { EMULATOR_PORT: '0', EMULATOR_DATA_DIR: join(dir, `vault${suffix}`) }),
    ...(env.DATABASE_TYPE === 'postgres' ? {} : { DATABASE_PATH: join(dir, `db${suffix}.sqlite`) }),
  };
}

/** `env` with `changes` (another vault, another database), without the variables of the backends it no longer uses. */
export function switchedTo(env: Record<string, string>, changes: Record<string, string>): Record<string, string> {
  const merged = { ...env, ...changes };
  const unused = new Set(variablesOfBackendsNotInUse(merged));
  return Object.fromEntries(Object.entries(merged).filter(([name]) => !unused.has(name)));
}
