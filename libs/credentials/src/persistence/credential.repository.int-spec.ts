import { randomUUID } from 'node:crypto';
import { TransactionRunner } from '@app/common';
import { createTestDatabase, DATABASE_KINDS, loggedSelects, TestDatabase } from '@app/testing';
import { DataSource } from 'typeorm';
import { at, BASE_MS, credentialRow, openRepositoryDataSource, sleep, tenant } from '../../test/repository-fixtures';
import { CredentialStatus, CredentialType } from '../credential-type';
import { CredentialEntity } from '../entities';
import { CredentialListRepository } from './credential-list.repository';
import { CredentialScanRepository } from './credential-scan.repository';
import { CredentialRepository, slotKey } from './credential.repository';

const DAY = 86_400_000;

// The cv_credentials repositories alone, on a bare DataSource with the lib's migrations and a TransactionRunner.
describe.each(DATABASE_KINDS)('the cv_credentials repositories on %s', (kind) => {
  let db: TestDatabase;
  let ds: DataSource;
  let runner: TransactionRunner;
  let repo: CredentialRepository;
  let lists: CredentialListRepository;
  let scans: CredentialScanRepository;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    ({ ds, runner } = await openRepositoryDataSource(db));
    repo = new CredentialRepository(runner);
    lists = new CredentialListRepository(runner);
    scans = new CredentialScanRepository(runner);
  });
  afterAll(async () => {
    if (ds?.isInitialized) await ds.destroy();
    await db?.drop();
  });

  /** The SQL and parameters of every SELECT `work` sends. */
  const selects = (work: () => Promise<unknown>) => loggedSelects(ds, work);

  it('inserts and reads rows back with every field; other tenants see nothing', async () => {
    const t = tenant();
    const row = credentialRow(t, { tags: { env: 'prod' }, expiresAt: at(DAY), valueHint: 'xyz', vaultGeneration: 2 });
    await repo.insert(row);
    expect(await repo.findById(t, row.id)).toEqual(row);
    expect(await repo.findById(tenant(), row.id)).toBeNull();
  });

  it('finds a slot\'s live row (deleted excluded) and the highest generation any of its rows used (deleted included, whatever its createdAt)', async () => {
    const t = tenant();
    const key = { tenantId: t, integrationId: 'github', connectionId: 'c1', type: CredentialType.API_KEY };
    expect(await repo.findSlot(key)).toEqual({ liveId: null, highestGeneration: null });
    const newer = credentialRow(t, { status: CredentialStatus.DELETED, deletedAt: at(5), createdAt: at(4), vaultGeneration: 0 });
    // A restored row, backdated, on a later generation; then deleted.
    const restored = credentialRow(t, { status: CredentialStatus.DELETED, deletedAt: at(6), createdAt: at(-100), vaultGeneration: 1 });
    await repo.insert(newer);
    await repo.insert(restored);
    expect(await repo.findLive(t, 'github', 'c1', CredentialType.API_KEY)).toBeNull();
    expect(await repo.findSlot(key)).toEqual({ liveId: null, highestGeneration: 1 });
    const live = credentialRow(t, { createdAt: at(-200), vaultGeneration: 2 });
    await repo.insert(live);
    expect(await repo.findSlot(key)).toEqual({ liveId: live.id, highestGeneration: 2 });
    expect(await repo.findSlot({ ...key, type: CredentialType.CUSTOM_SECRET })).toEqual({ liveId: null, highestGeneration: null });
    expect([...(await repo.findSlots([key, { ...key, connectionId: 'c2' }])).values()]).toEqual([{ liveId: live.id, highestGeneration: 2 }]);
    expect((await repo.findLive(t, 'github', 'c1', CredentialType.API_KEY))?.id).toBe(live.id);
    expect(await repo.findLive(t, 'github', 'c1', CredentialType.CUSTOM_SECRET)).toBeNull();
  });

  it('compare-and-set: moves the row once per row version, never a deleted row, never id, tenant or creation', async () => {
    const t = tenant();
    const row = credentialRow(t);
    await repo.insert(row);
    const next = { ...row, currentVersion: 2, rowVersion: 2, updatedAt: at(99), updatedBy: 'user-2', createdBy: 'forged', tenantId: 'forged' };
    await expect(runner.run(() => repo.compareAndSet(row, next))).resolves.toBe(true);
    await expect(runner.run(() => repo.compareAndSet(row, { ...next, currentVersion: 3, rowVersion: 3 }))).resolves.toBe(false);
    expect(await repo.findById(t, row.id)).toEqual({ ...next, tenantId: t, createdBy: 'user-1' });
    const stored = (await repo.findById(t, row.id))!;
    const deleted = { ...stored, status: CredentialStatus.DELETED, rowVersion: 3 };
    await expect(repo.compareAndSet(stored, deleted)).resolves.toBe(true);
    await expect(repo.compareAndSet(deleted, { ...deleted, status: CredentialStatus.ACTIVE, rowVersion: 4 })).resolves.toBe(false);
  });

  it('writes join the ambient transaction: a rollback takes the insert and the compare-and-set back', async () => {
    const t = tenant();
    const kept = credentialRow(t, { connectionId: 'kept' });
    await repo.insert(kept);
    const dropped = credentialRow(t, { connectionId: 'dropped' });
    await expect(
      runner.run(async () => {
        await repo.insert(dropped);
        expect(await repo.compareAndSet(kept, { ...kept, rowVersion: 2, tags: { x: 'y' } })).toBe(true);
        expect(await repo.findById(t, dropped.id)).not.toBeNull(); // visible inside
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await repo.findById(t, dropped.id)).toBeNull();
    expect(await repo.findById(t, kept.id)).toMatchObject({ rowVersion: 1, tags: {} });
  });

  it('a read outside the transaction never sees its uncommitted rows', async () => {
    const t = tenant();
    const row = credentialRow(t);
    let outside: Promise<unknown> | undefined;
    await expect(
      runner.run(async () => {
        await repo.insert(row);
        // Started from inside, but detached: it reads as another caller would (SQLite waits for the gate).
        outside = runner.detached(() => repo.findById(t, row.id));
        await sleep(30);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    await expect(outside).resolves.toBeNull();
  });

  it('pages live rows oldest first with filters, the effective status and a keyset cursor', async () => {
    const t = tenant();
    const now = BASE_MS + 100 * DAY;
    const rows = [
      credentialRow(t, { createdAt: at(1), connectionId: 'a', expiresAt: at(50 * DAY) }), // expired by now
      credentialRow(t, { createdAt: at(2), connectionId: 'b', expiresAt: at(200 * DAY) }),
      credentialRow(t, { createdAt: at(2), connectionId: 'c', type: CredentialType.CUSTOM_SECRET }),
      credentialRow(t, { createdAt: at(3), connectionId: 'd', status: CredentialStatus.NEEDS_REAUTH }),
      credentialRow(t, { createdAt: at(4), connectionId: 'e', status: CredentialStatus.DELETED }),
      credentialRow(t, { createdAt: at(5), integrationId: 'notion', connectionId: 'a' }),
    ];
    for (const r of rows) await repo.insert(r);
    const ids = (list: { id: string }[]) => list.map((r) => r.id);
    const byCreation = [rows[0], ...[rows[1], rows[2]].sort((x, y) => x.id.localeCompare(y.id)), rows[3], rows[5]];
    expect(ids(await lists.page(t, { nowMs: now, limit: 10 }))).toEqual(ids(byCreation));
    const first = await lists.page(t, { nowMs: now, limit: 2 });
    const last = first[1];
    const rest = await lists.page(t, { nowMs: now, limit: 10, after: { createdAtMs: last.createdAt.getTime(), id: last.id } });
    expect(ids([...first, ...rest])).toEqual(ids(byCreation));
    expect(ids(await lists.page(t, { nowMs: now, limit: 10, integrationId: 'notion' }))).toEqual([rows[5].id]);
    expect(ids(await lists.page(t, { nowMs: now, limit: 10, integrationId: 'github', connectionId: 'c' }))).toEqual([rows[2].id]);
    expect(ids(await lists.page(t, { nowMs: now, limit: 10, type: CredentialType.CUSTOM_SECRET }))).toEqual([rows[2].id]);
    expect(ids(await lists.page(t, { nowMs: now, limit: 10, expiringBeforeMs: BASE_MS + 60 * DAY }))).toEqual([rows[0].id]);
    expect(ids(await lists.page(t, { nowMs: now, limit: 10, status: CredentialStatus.EXPIRED }))).toEqual([rows[0].id]);
    expect(ids(await lists.page(t, { nowMs: now, limit: 10, status: CredentialStatus.NEEDS_REAUTH }))).toEqual([rows[3].id]);
    expect(ids(await lists.page(t, { nowMs: now, limit: 10, status: CredentialStatus.ACTIVE })).sort()).toEqual(ids([rows[1], rows[2], rows[5]]).sort());
    expect(await repo.liveIdsOfConnection(t, 'github', 'e')).toEqual([]);
    expect(await repo.liveIdsOfConnection(t, 'notion', 'a')).toEqual([rows[5].id]);
  });

  it('lists expiring rows soonest first, the connection rows in screen order, and statistics from GROUP BYs', async () => {
    const t = tenant();
    const now = BASE_MS + 100 * DAY;
    const rows = [
      credentialRow(t, { connectionId: 'b', expiresAt: at(105 * DAY) }), // within 7 days
      credentialRow(t, { connectionId: 'a', expiresAt: at(120 * DAY), integrationId: 'notion' }), // within 30
      credentialRow(t, { connectionId: 'a', expiresAt: at(90 * DAY), type: CredentialType.CUSTOM_SECRET }), // expired
      credentialRow(t, { connectionId: 'c', expiresAt: at(101 * DAY), status: CredentialStatus.REVOKED }),
      credentialRow(t, { connectionId: 'd', expiresAt: at(101 * DAY), status: CredentialStatus.DELETED }),
      credentialRow(t, { connectionId: 'a' }),
    ];
    for (const r of rows) await repo.insert(r);
    expect((await lists.expiring(t, now + 30 * DAY, 10)).map((r) => r.id)).toEqual([rows[2].id, rows[0].id, rows[1].id]);
    expect((await lists.expiring(t, now + 30 * DAY, 1)).map((r) => r.id)).toEqual([rows[2].id]);
    const screen = (await lists.connectionRows(t)).map((r) => [r.integrationId, r.connectionId, r.type]);
    expect(screen).toEqual([
      ['github', 'a', CredentialType.API_KEY],
      ['github', 'a', CredentialType.CUSTOM_SECRET],
      ['github', 'b', CredentialType.API_KEY],
      ['github', 'c', CredentialType.API_KEY],
      ['notion', 'a', CredentialType.API_KEY],
    ]);
    expect(await lists.statistics(t, now)).toEqual({
      total: 5,
      byType: { [CredentialType.API_KEY]: 4, [CredentialType.CUSTOM_SECRET]: 1 },
      byIntegration: { github: 4, notion: 1 },
      byStatus: { active: 3, expired: 1, revoked: 1 },
      expiringWithin7Days: 2,
      expiringWithin30Days: 3,
      expired: 1,
    });
    expect(await lists.statistics(tenant('empty'), now)).toMatchObject({ total: 0, byType: {}, expired: 0 });
  });

  it('scans every tenant for expiring rows by stored status and type, keyset-paged by (expiresAt, id)', async () => {
    const [t1, t2] = [tenant('scan'), tenant('scan')];
    // Far in the future, so rows of the other tests in this database never interleave.
    const far = 10_000 * DAY;
    const x = credentialRow(t1, { connectionId: 'x', expiresAt: at(far + 2) });
    const y = credentialRow(t2, { connectionId: 'y', expiresAt: at(far + 1) });
    const z = credentialRow(t2, { connectionId: 'z', expiresAt: at(far + 3), type: CredentialType.CUSTOM_SECRET });
    const r = credentialRow(t1, { connectionId: 'r', expiresAt: at(far), status: CredentialStatus.REVOKED });
    const late = credentialRow(t1, { connectionId: 'late', expiresAt: at(far + 10) });
    for (const row of [x, y, z, r, late]) await repo.insert(row);
    const scan = (o: Partial<Parameters<CredentialScanRepository['scanExpiring']>[0]> = {}) =>
      scans.scanExpiring({ beforeMs: BASE_MS + far + 10, statuses: [CredentialStatus.ACTIVE], limit: 100, after: { expiresAtMs: BASE_MS + far - 1, id: '' }, ...o });
    expect((await scan()).map((s) => s.id)).toEqual([y.id, x.id, z.id]);
    expect(await scan({ limit: 1 })).toEqual([{ id: y.id, tenantId: t2, integrationId: 'github', connectionId: 'y', type: CredentialType.API_KEY, expiresAt: y.expiresAt }]);
    expect((await scan({ after: { expiresAtMs: BASE_MS + far + 1, id: y.id } })).map((s) => s.id)).toEqual([x.id, z.id]);
    expect((await scan({ type: CredentialType.CUSTOM_SECRET })).map((s) => s.id)).toEqual([z.id]);
    expect((await scan({ statuses: [CredentialStatus.REVOKED] })).map((s) => s.id)).toEqual([r.id]);
  });

  it("reads a slot with many deleted rows from its index in one statement answering one row per slot, not every row", async () => {
    // A slot stored and deleted again and again (reconnects, staged secrets): a store reads it each time.
    const t = tenant('churn');
    const key = { tenantId: t, integrationId: 'github', connectionId: 'churned', type: CredentialType.API_KEY };
    const deleted = Array.from({ length: 200 }, (_, g) => credentialRow(t, { ...key, status: CredentialStatus.DELETED, deletedAt: at(g), createdAt: at(-g), vaultGeneration: g }));
    const live = credentialRow(t, { ...key, vaultGeneration: 200 });
    const others = Array.from({ length: 3000 }, (_, i) => credentialRow(tenant('bulk-slot'), { connectionId: `conn-${i}` }));
    await repo.insertMany([...deleted, ...others]);
    if (kind === 'postgres') await ds.query(`ANALYZE ${ds.getMetadata(CredentialEntity).tablePath}`);

    for (const [expected, other] of [[{ liveId: null, highestGeneration: 199 }, null], [{ liveId: live.id, highestGeneration: 200 }, live]] as const) {
      if (other) await repo.insert(other);
      const statements = await selects(async () => expect(await repo.findSlots([key, { ...key, connectionId: 'never-used' }])).toEqual(new Map([[slotKey(key), expected]])));
      expect(statements).toHaveLength(1);
      const [[sql, params]] = statements;
      expect(await ds.query(sql, params)).toHaveLength(1);
      if (kind === 'sqlite') {
        const plan = ((await ds.query(`EXPLAIN QUERY PLAN ${sql}`, params)) as Array<{ detail: string }>).map((p) => p.detail).join(' | ');
        expect(plan).toMatch(/SEARCH c USING (COVERING )?INDEX (IDX_cv_credentials_tenant_connection|UQ_cv_credentials_live) /);
        expect(plan).not.toMatch(/SCAN c\b/);
      } else {
        const [row] = (await ds.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params)) as Array<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>;
        const scans = planNodes(row['QUERY PLAN'][0].Plan).filter((n) => /Scan/.test(n['Node Type']));
        expect(scans.map((n) => n['Node Type'])).not.toContain('Seq Scan');
        // One index range per slot asked for (a BitmapOr of them, or index scans).
        const ranges = scans.map((n) => n['Index Name']).filter(Boolean);
        expect(ranges.length).toBeGreaterThan(0);
        for (const name of ranges) expect(name).toMatch(/^(IDX_cv_credentials_tenant_connection|UQ_cv_credentials_live)$/);
      }
    }
  });

  it('counts the live rows of a type by connection-id prefix (every tenant) from an index range, not a scan of every credential', async () => {
    // Unique to this run: the count spans every tenant of the database.
    const prefix = `${tenant('pend')}.`;
    const [t1, t2] = [tenant('count'), tenant('count')];
    const pending = (t: string, over: Partial<Parameters<typeof credentialRow>[1]> = {}) =>
      credentialRow(t, { type: CredentialType.CUSTOM_SECRET, connectionId: `${prefix}${randomUUID()}`, ...over });
    const counted = [pending(t1), pending(t1, { integrationId: 'acme' }), pending(t2)];
    const notCounted = [
      pending(t1, { status: CredentialStatus.DELETED }),
      pending(t2, { type: CredentialType.API_KEY }),
      pending(t2, { connectionId: prefix.slice(0, -1) }), // the prefix without its last character
      pending(t2, { connectionId: `${prefix.slice(0, -1)}/x` }), // the next character up
      pending(t2, { connectionId: prefix.toUpperCase() + 'x' }),
    ];
    // Many other credentials: a scan of the table (or of an index over all of it) reads them all.
    const others = Array.from({ length: 3000 }, (_, i) => credentialRow(tenant('bulk'), { connectionId: `conn-${i}`, type: i % 2 ? CredentialType.CUSTOM_SECRET : CredentialType.API_KEY }));
    await repo.insertMany([...counted, ...notCounted, ...others]);
    if (kind === 'postgres') await ds.query(`ANALYZE ${ds.getMetadata(CredentialEntity).tablePath}`);

    const statements = await selects(async () => expect(await scans.countLiveByConnectionPrefix(CredentialType.CUSTOM_SECRET, prefix)).toBe(3));
    expect(statements).toHaveLength(1);
    const [[sql, params]] = statements;
    if (kind === 'sqlite') {
      const plan = ((await ds.query(`EXPLAIN QUERY PLAN ${sql}`, params)) as Array<{ detail: string }>).map((p) => p.detail).join(' | ');
      expect(plan).toMatch(/^SEARCH c USING (COVERING )?INDEX IDX_cv_credentials_type_connection \(type=\? AND connection_id>\? AND connection_id<\?\)$/);
    } else {
      const [row] = (await ds.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params)) as Array<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>;
      const scans = planNodes(row['QUERY PLAN'][0].Plan).filter((n) => /Scan/.test(n['Node Type']));
      expect(scans.map((n) => [n['Node Type'], n['Index Name']])).toEqual([[expect.stringMatching(/^Index (Only )?Scan$/), 'IDX_cv_credentials_type_connection']]);
      // The index range holds the counted rows only: the deleted one and the other tenants' credentials are not in it.
      expect(scans[0]['Actual Rows']).toBe(3);
    }
  });

  it('findById reads on the current connection after the DataSource reconnects, and as another caller while a transaction is open', async () => {
    const t = tenant('reconnect');
    const row = credentialRow(t, { tags: { env: 'prod' } });
    await repo.insert(row);
    expect(await repo.findById(t, row.id)).toEqual(row);
    // A statement or pool of the closed connection would fail here ("The database connection is not open").
    await ds.destroy();
    await ds.initialize();
    expect(await repo.findById(t, row.id)).toEqual(row);
    // Committed changes are read at once; another caller never sees an open transaction's change.
    const next = { ...row, rowVersion: 2, tags: { env: 'dev' } };
    let outside: Promise<unknown> | undefined;
    await runner.run(async () => {
      expect(await repo.compareAndSet(row, next)).toBe(true);
      outside = runner.detached(() => repo.findById(t, row.id));
      expect(await repo.findById(t, row.id)).toEqual(next);
      if (kind === 'postgres') expect(await outside).toEqual(row);
    });
    // SQLite: the outside read waited for the commit (the gate); PostgreSQL: it read the committed row.
    await expect(outside).resolves.toEqual(kind === 'sqlite' ? next : row);
    expect(await repo.findById(t, row.id)).toEqual(next);
  });
});

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Actual Rows'?: number;
  Plans?: PlanNode[];
}

/** Every node of a plan tree, depth first. */
function planNodes(n: PlanNode): PlanNode[] {
  return [n, ...(n.Plans ?? []).flatMap(planNodes)];
}
