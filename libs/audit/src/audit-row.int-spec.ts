import { ManualClock } from '@app/common';
import { DATABASE_KINDS } from '@app/testing';
import { AuditAction, AuditResult, computeEntryHash } from '@app/audit';
import { AuditLogEntry } from './entities/audit-log-entry.entity';
import type { ChainRow } from './internal/audit-row';
import { canonicalJson } from './internal/canonical';
import { linkRows } from './internal/chain-link';
import { prepareEvent } from './internal/prepare-event';
import { AuditRepositoryFixture, openAuditRepository } from '../test/fixtures';
import { tenant } from '../test/harness';

const clock = new ManualClock(new Date(Date.UTC(2026, 0, 1)));

// verify's hand-mapped page must read every column exactly as TypeORM's hydration does.
describe.each(DATABASE_KINDS)('the audit chain page (plain SQL) on %s', (kind) => {
  let f: AuditRepositoryFixture;
  beforeAll(async () => (f = await openAuditRepository(kind)));
  afterAll(() => f?.close());

  it('maps a row with every field set, and one with the nullable fields null, as the entity hydrates them', async () => {
    const { ds, repo } = f;
    const t = tenant();
    const base = { action: AuditAction.READ, resource: 'cred-1', result: AuditResult.SUCCESS };
    const bare = prepareEvent({ ...base, context: { tenantId: t, actor: { id: 'user-2' } } }, clock).prepared;
    const full = {
      ...prepareEvent({ ...base, context: { tenantId: t, actor: { id: 'user-ü' } } }, clock).prepared,
      actorIp: '10.0.0.7',
      userAgent: 'agent/1.0 "q"',
      errorCode: '1003',
      durationMs: 2_000_000_000,
      correlationId: 'corr-1',
      details: { z: 'é\u2028', a: [1.5, true, null, { y: 0, b: 'x' }], big: 2 ** 52 },
      // Far past 2^32 ms, so a 32-bit read of the BIGINT columns would show.
      occurredAt: new Date(Date.UTC(2286, 10, 20, 17, 46, 39, 999)),
    };
    const written = linkRows([full, bare], null);
    await ds.transaction((m) => repo.insert(written, m));
    expect(written[0].row.actorIp).toBe('10.0.0.7');
    expect(written[1].row.details).toBeNull();

    const [hydrated, mapped] = await ds.transaction(async (m) => [
      await m.getRepository(AuditLogEntry).find({ where: { tenantId: t }, order: { sequence: 'ASC' } }),
      await repo.chainPage(t, 0, 10, m),
    ]);
    expect(hydrated).toHaveLength(2);
    expect(mapped).toHaveLength(2);
    // Every column read back (query_pending is not: SQLite's bookkeeping, see query-index-catch-up.ts).
    const columns = ds
      .getMetadata(AuditLogEntry)
      .columns.filter((c) => c.isSelect)
      .map((c) => c.propertyName as keyof ChainRow & keyof AuditLogEntry);
    expect(columns).toHaveLength(16);
    for (let i = 0; i < 2; i++) {
      const [e, r] = [hydrated[i], mapped[i]];
      for (const c of columns) {
        if (c === 'details') continue;
        expect({ [c]: r[c] }).toStrictEqual({ [c]: e[c] });
      }
      // details stays the stored text: exactly the canonical JSON of what the entity hydrates, and hashed as is.
      expect(r.details).toBeNull();
      expect(r.detailsJson).toBe(e.details === null ? null : canonicalJson(e.details));
      expect(r.detailsJson === null ? null : JSON.parse(r.detailsJson)).toStrictEqual(e.details);
      expect(computeEntryHash(r, r.detailsJson ?? 'null')).toBe(e.hash);
      expect(computeEntryHash(e)).toBe(e.hash);
    }
    expect(hydrated[0].details).not.toBeNull();
    for (const c of ['actorIp', 'userAgent', 'errorCode', 'durationMs', 'correlationId', 'details'] as const) expect(hydrated[1][c]).toBeNull();
    expect(mapped.map((r) => r.sequence)).toEqual([1, 2]);
    expect(await ds.transaction((m) => repo.chainPage(t, 1, 10, m))).toEqual([mapped[1]]);
    expect(await ds.transaction((m) => repo.chainPage(t, 0, 1, m))).toEqual([mapped[0]]);
  });
});
