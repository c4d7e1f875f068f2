import { formatSummaryTable } from './summary-table';
import type { MigrationSummary } from './migration.types';

const summary = (errors: MigrationSummary['errors']): MigrationSummary => ({
  source: 'jsonl:legacy.jsonl',
  dryRun: true,
  totalConnections: 2,
  successfulMigrations: 0,
  failedMigrations: 2,
  skipped: 0,
  totalCredentialsMigrated: 0,
  durationMs: 10,
  errors,
  rowsByKeyIndex: {},
  throttling: { absorbed: 0, decreases: 0, maxConcurrency: 4, finalConcurrency: 4 },
  aborted: false,
});

describe('formatSummaryTable', () => {
  // A legacy row is refused because its ids are not identifiers, and the line saying so printed them as they were:
  // a line break forged a line of the table ("successful migrations  999"), an ESC sequence drove the terminal.
  it("shows a refused row's ids with their control characters escaped: one error is one line, no escape reaches the terminal", () => {
    const table = formatSummaryTable(
      summary([
        { legacyId: '2\u001b[2J', tenantId: 'h1\r\nsuccessful migrations  999', integrationId: 'gh\u009b31m', connectionId: 'evil\u001b[31m\nFAKE', field: null, code: 'INVALID_IDENTIFIER', reason: 'tenantId is missing or not an identifier' },
      ]),
    );
    // eslint-disable-next-line no-control-regex
    expect(table).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    const errorLines = table.split('\n').slice(table.split('\n').indexOf('errors (1):') + 1);
    expect(errorLines).toEqual(['  h1\\r\\nsuccessful migrations  999/gh\\u009b31m/evil\\u001b[31m\\nFAKE [row 2\\u001b[2J] (connection): INVALID_IDENTIFIER — tenantId is missing or not an identifier']);
    expect(table.match(/^successful migrations/gm)).toHaveLength(1);
  });

  it('says when the vault stopped the run, and that a re-run migrates the rest', () => {
    const table = formatSummaryTable({ ...summary([]), dryRun: false, stopped: { code: 'MIGRATION_VAULT_UNAVAILABLE', reason: 'the vault stayed unavailable' } });
    expect(table).toMatch(/^stopped +MIGRATION_VAULT_UNAVAILABLE: run it again to migrate the rest$/m);
    expect(formatSummaryTable(summary([]))).not.toMatch(/^stopped/m);
  });
});
