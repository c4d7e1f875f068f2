import { z } from 'zod';
import { postgresUrlSchema } from '@app/common';
import type { LegacyMapping } from '@app/migration';

/** What the migrate commands read from the environment (the libs never do). */
export interface MigrateEnv {
  /** SQL source: PostgreSQL URL of the legacy database, or the path of a legacy SQLite file. */
  legacyDatabase?: { type: 'postgres'; url: string } | { type: 'sqlite'; path: string };
  /** LEGACY_ENCRYPTION_KEYS: comma-separated 32-byte keys (64 hex characters or base64), tried in order. */
  keys: string[];
  /** LEGACY_MAPPING: JSON of `LegacyMapping` (table, id/tenant/integration/connection columns, fields per type). */
  mapping: LegacyMapping;
  concurrency: { initial: number; max: number };
  /** MIGRATION_MAX_VAULT_OUTAGE_MS: the module's `maxVaultOutageMs` (how long a run waits out a vault outage). */
  maxVaultOutageMs: number;
}

const schema = z.object({
  LEGACY_DATABASE_URL: postgresUrlSchema().optional(),
  LEGACY_DATABASE_PATH: z.string().min(1).optional(),
  LEGACY_ENCRYPTION_KEYS: z.string().optional(),
  LEGACY_MAPPING: z.string().optional(),
  MIGRATION_CONCURRENCY_INITIAL: z.coerce.number().int().min(1).max(1024).default(4),
  MIGRATION_CONCURRENCY_MAX: z.coerce.number().int().min(1).max(1024).default(64),
  MIGRATION_MAX_VAULT_OUTAGE_MS: z.coerce.number().int().min(0).max(300_000).default(120_000),
});

/** Thrown on a bad environment; lists every variable to fix and never quotes a value (keys are secrets). */
export class MigrateEnvError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid migration environment:\n${problems.map((p) => `  - ${p}`).join('\n')}\nSee the migration section of the README.`);
    this.name = 'MigrateEnvError';
  }
}

export function loadMigrateEnv(env: Record<string, string | undefined>, opts: { needKeys: boolean; needDatabase: boolean }): MigrateEnv {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(cleaned, { reportInput: false });
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  const e = parsed.success ? parsed.data : undefined;
  // Presence is read from the raw variables: one that failed to parse is reported as wrong, not also as missing.
  const keys = (cleaned.LEGACY_ENCRYPTION_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean);
  if (opts.needKeys && !keys.length) problems.push('LEGACY_ENCRYPTION_KEYS: is required (comma-separated 32-byte keys, hex or base64)');
  if (opts.needDatabase && !cleaned.LEGACY_DATABASE_URL && !cleaned.LEGACY_DATABASE_PATH) {
    problems.push('LEGACY_DATABASE_URL or LEGACY_DATABASE_PATH: one is required for --source sql');
  }
  let mapping: LegacyMapping = {};
  if (cleaned.LEGACY_MAPPING) {
    try {
      mapping = JSON.parse(cleaned.LEGACY_MAPPING) as LegacyMapping;
      if (mapping === null || typeof mapping !== 'object' || Array.isArray(mapping)) throw new Error('not an object');
    } catch {
      problems.push('LEGACY_MAPPING: must be a JSON object (table, idColumn, tenantColumn, integrationColumn, connectionColumn, fields)');
    }
  }
  if (problems.length || !e) throw new MigrateEnvError(problems);
  return {
    keys,
    mapping,
    legacyDatabase: e.LEGACY_DATABASE_URL
      ? { type: 'postgres', url: e.LEGACY_DATABASE_URL }
      : e.LEGACY_DATABASE_PATH
        ? { type: 'sqlite', path: e.LEGACY_DATABASE_PATH }
        : undefined,
    concurrency: { initial: Math.min(e.MIGRATION_CONCURRENCY_INITIAL, e.MIGRATION_CONCURRENCY_MAX), max: e.MIGRATION_CONCURRENCY_MAX },
    maxVaultOutageMs: e.MIGRATION_MAX_VAULT_OUTAGE_MS,
  };
}
