import { showControlCharacters as shown } from '@app/common';
import type { MigrationSummary } from './migration.types';

/** The summary as a console table (counts, then one line per error: ids, field, reason — never a value). */
export function formatSummaryTable(s: MigrationSummary, maxErrors = 50): string {
  const rows: [string, string][] = [
    ['source', shown(s.source)],
    ['dry run', String(s.dryRun)],
    // Only when stopped early: the counts cover the connections it settled; a re-run resumes.
    ...(s.aborted ? [['aborted', 'yes: run it again to migrate the rest'] as [string, string]] : []),
    ...(s.stopped ? [['stopped', `${s.stopped.code}: run it again to migrate the rest`] as [string, string]] : []),
    ['total connections', String(s.totalConnections)],
    ['successful migrations', String(s.successfulMigrations)],
    ['failed migrations', String(s.failedMigrations)],
    ['skipped', String(s.skipped)],
    ['credentials migrated', String(s.totalCredentialsMigrated)],
    ['duration', `${(s.durationMs / 1000).toFixed(1)} s`],
    ['rows by key index', Object.entries(s.rowsByKeyIndex).map(([k, n]) => `#${k}: ${n}`).join(', ') || '-'],
    ['429s absorbed', `${s.throttling.absorbed} (max concurrency ${s.throttling.maxConcurrency})`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  if (s.errors.length) {
    lines.push('', `errors (${s.errors.length}):`);
    for (const e of s.errors.slice(0, maxErrors)) {
      // The ids are the legacy row's as read, and a refused row's may hold anything: escaped, one error stays one line.
      lines.push(shown(`  ${e.tenantId}/${e.integrationId}/${e.connectionId} [row ${e.legacyId}] ${e.field ?? '(connection)'}: ${e.code} — ${e.reason}`));
    }
    if (s.errors.length > maxErrors) lines.push(`  … ${s.errors.length - maxErrors} more in the JSON report`);
  }
  return lines.join('\n');
}
