import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { legacySeedKind, type LegacySeedOptions } from '../legacy/legacy-seed';

/** A legacy SQLite database in a temp dir (the "other" database a SqlLegacySource reads). */
export async function openLegacySqlite(): Promise<{ db: DataSource; path: string; dispose(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'cv-legacy-'));
  const path = join(dir, 'legacy.sqlite');
  const db = await new DataSource({ type: 'better-sqlite3', database: path }).initialize();
  return {
    db,
    path,
    dispose: async () => {
      if (db.isInitialized) await db.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What a run over `legacySeedRows({ count, anomalies: true })` must report, from the seed's own rules. */
export function expectedTotals(o: Pick<LegacySeedOptions, 'count' | 'anomalies' | 'apiKeysOnly'>) {
  let successfulMigrations = 0;
  let failedMigrations = 0;
  let skipped = 0;
  let totalCredentialsMigrated = 0;
  for (let i = 0; i < o.count; i++) {
    const slot = o.anomalies ? i % 100 : -1;
    if ([5, 7, 8, 9, 12].includes(slot)) failedMigrations++;
    else if (slot === 10) skipped++;
    else {
      successfulMigrations++;
      totalCredentialsMigrated += legacySeedKind(i, o) === 1 ? 1 : 2;
    }
  }
  return { totalConnections: o.count, successfulMigrations, failedMigrations, skipped, totalCredentialsMigrated };
}
