import { ManualClock } from '@app/common';
import { AuditAction, AuditResult } from '../interfaces/audit-event.interface';
import { canonicalJson, computeEntryHash } from './canonical';
import { linkRows } from './chain-link';
import { prepareEvent } from './prepare-event';

describe('linkRows', () => {
  it('stores and hashes the canonical JSON of each row\'s details, also for a details object every read shares', () => {
    const clock = new ManualClock(new Date(Date.UTC(2026, 11, 3)));
    const shared = { integrationId: 'github', connectionId: 'c-1', type: 'api_key', valueStore: 'keyvault', version: 3 };
    const read = (details?: Record<string, unknown>, tenantId = 't1') =>
      prepareEvent({ action: AuditAction.READ, context: { tenantId, actor: { id: 'k1' } }, resource: 'cred-1', result: AuditResult.SUCCESS, details }, clock).prepared;
    const events = [read(shared), read(shared), read(shared), read(undefined), read({ nested: { a: 1 }, version: 4 }), read(shared)];
    const rows = linkRows(events, { sequence: 41, hash: 'ab'.repeat(32) });

    expect(rows.map((r) => r.row.sequence)).toEqual([42, 43, 44, 45, 46, 47]);
    let previous = 'ab'.repeat(32);
    for (const { row, detailsJson } of rows) {
      expect(row.previousHash).toBe(previous);
      expect(detailsJson).toBe(row.details === null ? null : canonicalJson(row.details));
      // Recomputed from the row's fields alone, as verify does.
      expect(computeEntryHash({ ...row, details: row.details === null ? null : JSON.parse(detailsJson!) })).toBe(row.hash);
      previous = row.hash;
    }
    expect(rows[5].detailsJson).toBe('{"connectionId":"c-1","integrationId":"github","type":"api_key","valueStore":"keyvault","version":3}');
    expect(new Set(rows.map((r) => r.row.id)).size).toBe(rows.length);
  });
});
