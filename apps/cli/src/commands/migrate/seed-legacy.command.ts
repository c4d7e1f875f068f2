import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Command, CommandRunner, Option } from 'nest-commander';
import { DataSource } from 'typeorm';
import { legacyJsonl, legacySeedRows, parseLegacyKey, seedLegacyTable } from '@app/migration';

interface SeedFlags {
  count?: number;
  sqlite?: string;
  jsonl?: string;
  anomalies?: boolean;
  keyFile?: string;
}

/**
 * `cli migrate:seed-legacy [--count 1000] [--sqlite ./data/legacy.sqlite] [--jsonl ./data/legacy.jsonl]
 * [--anomalies] [--key-file ./data/legacy.key]`: a demo legacy database to try `migrate` on. Rows are
 * encrypted with the first key of LEGACY_ENCRYPTION_KEYS, or with a new key written to --key-file
 * (mode 0600; never printed).
 */
@Command({ name: 'migrate:seed-legacy', description: 'Create a demo legacy database (SQLite) and/or JSON-lines file to try migrate on' })
export class SeedLegacyCommand extends CommandRunner {
  async run(_args: string[], flags: SeedFlags): Promise<void> {
    const sqlite = flags.sqlite ?? (flags.jsonl ? undefined : './data/legacy.sqlite');
    const given = (process.env.LEGACY_ENCRYPTION_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean);
    const keys = given.map((k) => parseLegacyKey(k));
    if (keys.some((k) => !k)) throw new Error('LEGACY_ENCRYPTION_KEYS: every key must be 32 bytes (64 hex characters or base64)');
    if (!keys.length) {
      const file = resolve(flags.keyFile ?? './data/legacy.key');
      const key = randomBytes(32);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, `${key.toString('hex')}\n`, { mode: 0o600 });
      keys.push(key);
      process.stdout.write(`new legacy key written to ${file} (export LEGACY_ENCRYPTION_KEYS=$(cat ${file}))\n`);
    }
    const rows = legacySeedRows({ count: flags.count ?? 1000, keys: keys as Buffer[], anomalies: flags.anomalies });
    if (sqlite) {
      const path = resolve(sqlite);
      mkdirSync(dirname(path), { recursive: true });
      const db = await new DataSource({ type: 'better-sqlite3', database: path }).initialize();
      try {
        await seedLegacyTable(db, rows);
      } finally {
        await db.destroy();
      }
      process.stdout.write(`${rows.length} legacy connection(s) in ${path} (table legacy_connections)\n`);
    }
    if (flags.jsonl) {
      const path = resolve(flags.jsonl);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, legacyJsonl(rows), { mode: 0o600 });
      process.stdout.write(`${rows.length} legacy connection(s) in ${path}\n`);
    }
  }

  @Option({ flags: '--count <n>', description: 'connections (default 1000)' })
  parseCount(v: string): number {
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error('--count must be a positive integer');
    return Number(v);
  }

  @Option({ flags: '--sqlite <path>', description: 'legacy SQLite file (default ./data/legacy.sqlite unless only --jsonl)' })
  parseSqlite(v: string): string {
    return v;
  }

  @Option({ flags: '--jsonl <path>', description: 'also (or only) write the rows as JSON lines' })
  parseJsonl(v: string): string {
    return v;
  }

  @Option({ flags: '--anomalies', description: 'one of each problem per hundred rows (tampered, second key, unknown key, empty, duplicates)' })
  parseAnomalies(): boolean {
    return true;
  }

  @Option({ flags: '--key-file <path>', description: 'where a new key goes when LEGACY_ENCRYPTION_KEYS is unset (default ./data/legacy.key)' })
  parseKeyFile(v: string): string {
    return v;
  }
}
