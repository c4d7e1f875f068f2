import type { DataSource } from 'typeorm';
import { CREDENTIALS_ENTITIES, CREDENTIALS_MIGRATIONS } from '@app/credentials';
import { DATABASE_KINDS, useMigrationDatabase } from '@app/testing';
import { ROTATION_ENTITIES, ROTATION_MIGRATIONS } from '../rotation.schema';
import { WebhookStagedOverRowVersion1960000000000 } from '../webhooks';
import { RevokedVersionsBeforeRevokedAt1950000000000, RotationHistoryOneRowPerRotation1940000000000 } from './index';

// 1950 marks credential versions: it needs the Credentials lib's tables, which the 1940 case below does not create.
const through1940 = ROTATION_MIGRATIONS.filter((m) => m !== RevokedVersionsBeforeRevokedAt1950000000000);
const before = through1940.filter((m) => m !== RotationHistoryOneRowPerRotation1940000000000);

// One history row per rotation, as an operator upgrading meets it: a table holding the duplicates two replicas
// recorded for one rotation keeps the earliest of each, every revoke row stays, and it is undone cleanly.
describe.each(DATABASE_KINDS)('RotationHistoryOneRowPerRotation on %s', (kind) => {
  const bed = useMigrationDatabase(kind);
  const { table } = bed;
  const CRED = '00000000-0000-4000-8000-000000000001';
  const OTHER = '00000000-0000-4000-8000-000000000002';
  const row = (id: string, credentialId: string, action: string, toVersion: number, at: number, actor = 'u') =>
    `INSERT INTO ${table('cv_rotation_history')} (id, tenant_id, credential_id, action, method, from_version, to_version, actor, reason, severity, created_at) ` +
    `VALUES ('${id}', 't1', '${credentialId}', '${action}', '${action === 'rotate' ? 'webhook' : action}', ${toVersion - 1}, ${toVersion}, '${actor}', NULL, NULL, ${at})`;
  const rows = async (ds: DataSource) =>
    ((await ds.query(`SELECT id, credential_id AS c, action, to_version AS v, actor FROM ${table('cv_rotation_history')} ORDER BY credential_id, created_at, id`)) as Array<Record<string, unknown>>).map(
      (r) => [r.id, r.c === CRED ? 'cred' : 'other', r.action, Number(r.v), r.actor],
    );

  it('keeps the earliest row of each rotation recorded twice, every revoke row, and is undone', async () => {
    const old = await bed.migrate(ROTATION_ENTITIES, before);
    for (const sql of [
      row('r2-first', CRED, 'rotate', 2, 1000, 'replica-a'),
      row('r2-again', CRED, 'rotate', 2, 1005, 'replica-b'), // the same rotation answered on another replica
      row('a3-tie', CRED, 'rotate', 3, 2000),
      row('b3-tie', CRED, 'rotate', 3, 2000), // same instant: the lower id stays
      row('rb4', CRED, 'rollback', 4, 3000),
      row('rb4-again', CRED, 'rollback', 4, 3001),
      row('rv4', CRED, 'revoke', 4, 4000), // revoke, un-revoke, revoke again: one version, three changes
      row('ur4', CRED, 'unrevoke', 4, 4001),
      row('rv4-again', CRED, 'revoke', 4, 4002),
      row('o2', OTHER, 'rotate', 2, 1000), // another credential's rotation to the same version
    ]) {
      await old.query(sql);
    }
    await old.destroy();

    const after = await bed.migrate(ROTATION_ENTITIES, through1940);
    expect(await rows(after)).toEqual([
      ['r2-first', 'cred', 'rotate', 2, 'replica-a'],
      ['a3-tie', 'cred', 'rotate', 3, 'u'],
      ['rb4', 'cred', 'rollback', 4, 'u'],
      ['rv4', 'cred', 'revoke', 4, 'u'],
      ['ur4', 'cred', 'unrevoke', 4, 'u'],
      ['rv4-again', 'cred', 'revoke', 4, 'u'],
      ['o2', 'other', 'rotate', 2, 'u'],
    ]);
    // The index holds from now on: a second row of one rotation is refused, a revoke of the same version is not.
    await expect(after.query(row('r2-third', CRED, 'rotate', 2, 5000))).rejects.toThrow(/unique|duplicate/i);
    await after.query(row('rv4-third', CRED, 'revoke', 4, 5000));

    await after.undoLastMigration();
    await after.query(row('r2-third', CRED, 'rotate', 2, 5000));
    expect((await rows(after)).filter((r) => r[2] === 'rotate' && r[3] === 2)).toHaveLength(3);
  });
});

// Versions a revoke withdrew before versions carried the mark (1880), as an operator upgrading meets them: a credential
// revoked, then rotated under an older version, is active, and 1880 (which marked the credentials revoked at the upgrade)
// left its leaked version readable by version and as a rollback target. The history's revokes and un-revokes are replayed.
describe.each(DATABASE_KINDS)('RevokedVersionsBeforeRevokedAt on %s', (kind) => {
  const bed = useMigrationDatabase(kind);
  const { table } = bed;
  const entities = [...CREDENTIALS_ENTITIES, ...ROTATION_ENTITIES];
  const all = [...CREDENTIALS_MIGRATIONS, ...ROTATION_MIGRATIONS];
  const id = (n: number) => `00000000-0000-4000-8000-00000000000${n}`;
  const credential = (n: number, status: string, current: number, tenant = 't1') =>
    `INSERT INTO ${table('cv_credentials')} (id, tenant_id, integration_id, connection_id, type, value_store, current_version, status, tags, row_version, created_at, updated_at, created_by, updated_by) ` +
    `VALUES ('${id(n)}', '${tenant}', 'acme', 'c${n}', 'api_key', 'envelope', ${current}, '${status}', '{}', 1, 1000, 1000, 'u', 'u')`;
  const version = (n: number, v: number, revokedAt: number | null = null, tenant = 't1') =>
    `INSERT INTO ${table('cv_credential_versions')} (id, credential_id, tenant_id, version, value_store, created_at, created_by, revoked_at) ` +
    `VALUES ('${v}${id(n).slice(1, -1)}${n}', '${id(n)}', '${tenant}', ${v}, 'envelope', 1000, 'u', ${revokedAt})`;
  let h = 0;
  const history = (n: number, action: string, v: number, at: number, tenant = 't1') =>
    `INSERT INTO ${table('cv_rotation_history')} (id, tenant_id, credential_id, action, method, from_version, to_version, actor, reason, severity, created_at) ` +
    `VALUES ('h${String(++h).padStart(3, '0')}', '${tenant}', '${id(n)}', '${action}', '${action === 'rotate' ? 'manual' : action}', ${action === 'rotate' ? v - 1 : v}, ${v}, 'u', NULL, NULL, ${at})`;

  // [credential n, version, revoked_at], in order.
  const marks = async (ds: DataSource) => {
    const rows = (await ds.query(`SELECT credential_id AS c, version AS v, revoked_at AS at FROM ${table('cv_credential_versions')} ORDER BY credential_id, version`)) as Array<Record<string, unknown>>;
    return rows.map((r) => [Number(String(r.c).slice(-1)), Number(r.v), r.at === null ? null : Number(r.at)]);
  };

  it('marks the versions a revoke withdrew before a rotation lifted it, lifts what un-revokes lifted, and leaves the rest', async () => {
    const old = await bed.migrate(entities, all.filter((m) => m !== RevokedVersionsBeforeRevokedAt1950000000000));
    const setup: Array<[number, string, number, Array<[string, number, number]>, Array<number | null>?]> = [
      [1, 'active', 2, [['revoke', 1, 100], ['rotate', 2, 110]]], // revoked, rotated: v1 leaked
      [2, 'active', 2, [['revoke', 1, 100], ['unrevoke', 1, 105], ['rotate', 2, 110]]], // a false alarm: nothing withdrawn
      [3, 'active', 4, [['revoke', 1, 100], ['rotate', 2, 110], ['revoke', 2, 120], ['unrevoke', 2, 125], ['rotate', 3, 130], ['revoke', 3, 140], ['rotate', 4, 150]]],
      [4, 'revoked', 1, [['revoke', 1, 100]], [900]], // revoked at the upgrade: 1880 marked it
      [5, 'deleted', 2, [['revoke', 1, 100], ['rotate', 2, 110]]],
      [6, 'active', 2, [['revoke', 1, 100], ['rotate', 2, 110]], [50, null]], // this version's own revoke already marked v1
      [7, 'active', 1, [['revoke', 1, 100]]], // made active without an un-revoke row: its current value is served, left alone
      // An older version's un-revoke raced by a rotation (through the credentials route) recorded its row though the
      // rotation had made the credential active first: it lifted nothing, v1 stays withdrawn.
      [8, 'active', 2, [['revoke', 1, 100], ['rotate', 2, 110], ['unrevoke', 2, 120]]],
      // Revoked now, 1880 marked all its versions alike: an un-revoke would lift v1 too, which an earlier revoke withdrew.
      [9, 'revoked', 3, [['revoke', 1, 100], ['rotate', 2, 110], ['rotate', 3, 115], ['revoke', 3, 120]], [900, 900, 900]],
    ];
    for (const [n, status, current, events, marks] of setup) {
      await old.query(credential(n, status, current));
      for (let v = 1; v <= current; v++) await old.query(version(n, v, marks?.[v - 1] ?? null));
      for (const [action, v, at] of events) await old.query(history(n, action, v, at));
    }
    await old.destroy();

    const after = await bed.migrate(entities, all);
    expect(await marks(after)).toEqual([
      [1, 1, 100],
      [1, 2, null],
      [2, 1, null],
      [2, 2, null],
      [3, 1, 100], // the first revoke's; the second one's (v2) was un-revoked, and the third withdrew it again
      [3, 2, 140],
      [3, 3, 140],
      [3, 4, null],
      [4, 1, 900],
      [5, 1, null],
      [5, 2, null],
      [6, 1, 50],
      [6, 2, null],
      [7, 1, null],
      [8, 1, 100],
      [8, 2, null],
      [9, 1, 100], // no longer the last revoke's: an un-revoke leaves it withdrawn
      [9, 2, 900],
      [9, 3, 900],
    ]);
  });

  it('replays the revokes and un-revokes of one millisecond in their order, and each tenant on its own', async () => {
    const old = await bed.migrate(entities, all.filter((m) => m !== RevokedVersionsBeforeRevokedAt1950000000000));
    // One millisecond: revoked, rotated, revoked again, un-revoked (the un-revoke's row inserted first: the lowest id),
    // then rotated. The un-revoke lifted the second revoke's v2 only (its mark came after the first's): v1 stays withdrawn.
    await old.query(credential(1, 'active', 3));
    for (let v = 1; v <= 3; v++) await old.query(version(1, v));
    for (const [action, v] of [['unrevoke', 2], ['revoke', 1], ['rotate', 2], ['revoke', 2]] as const) await old.query(history(1, action, v, 100));
    await old.query(history(1, 'rotate', 3, 130));
    // Another tenant's credential revoked, then rotated; a row naming it under the first tenant is not its history.
    await old.query(credential(2, 'active', 2, 't2'));
    for (let v = 1; v <= 2; v++) await old.query(version(2, v, null, 't2'));
    await old.query(history(2, 'revoke', 1, 200, 't2'));
    await old.query(history(2, 'rotate', 2, 210, 't2'));
    await old.query(history(2, 'unrevoke', 1, 205, 't1'));
    await old.destroy();

    const after = await bed.migrate(entities, all);
    expect(await marks(after)).toEqual([
      [1, 1, 100],
      [1, 2, null],
      [1, 3, null],
      [2, 1, 200],
      [2, 2, null],
    ]);
  });
});

// A pending webhook rotation staged by an older release, as an operator upgrading meets it: it stays pending without a
// row version (a revoke's late event falls back to its time for it), the table keeps its one-pending-per-secret index
// (SQLite rebuilds a table to add a column), and the migration is undone cleanly.
describe.each(DATABASE_KINDS)('WebhookStagedOverRowVersion on %s', (kind) => {
  const bed = useMigrationDatabase(kind);
  const { table } = bed;
  const pending = (id: string, extra = '') =>
    `INSERT INTO ${table('cv_webhook_secret_versions')} (id, tenant_id, integration_id, connection_id, credential_id, credential_version, state, staging_credential_id, attempts, created_at, updated_at${extra ? ', staged_over_row_version' : ''}) ` +
    `VALUES ('${id}', 't1', 'manual', 'acct', '00000000-0000-4000-8000-000000000001', NULL, 'pending', '00000000-0000-4000-8000-00000000000${id.length}', 0, 1000, 1000${extra})`;
  const rows = async (ds: DataSource) =>
    ((await ds.query(`SELECT id, state, staged_over_row_version AS v FROM ${table('cv_webhook_secret_versions')} ORDER BY id`)) as Array<Record<string, unknown>>).map((r) => [r.id, r.state, r.v === null ? null : Number(r.v)]);

  it('keeps an older pending row (no row version), the one-pending index, and is undone', async () => {
    // 1950 reads the Credentials lib's tables.
    const entities = [...CREDENTIALS_ENTITIES, ...ROTATION_ENTITIES];
    const all = [...CREDENTIALS_MIGRATIONS, ...ROTATION_MIGRATIONS];
    const old = await bed.migrate(entities, all.filter((m) => m !== WebhookStagedOverRowVersion1960000000000));
    await old.query(pending('p-old'));
    await old.destroy();

    const after = await bed.migrate(entities, all);
    expect(await rows(after)).toEqual([['p-old', 'pending', null]]);
    await expect(after.query(pending('p-second', ', 7'))).rejects.toThrow(/unique|duplicate/i);
    await after.query(`UPDATE ${table('cv_webhook_secret_versions')} SET state = 'retired' WHERE id = 'p-old'`);
    await after.query(pending('p-new', ', 7'));
    expect(await rows(after)).toEqual([['p-new', 'pending', 7], ['p-old', 'retired', null]]);

    await after.undoLastMigration();
    expect((await after.query(`SELECT * FROM ${table('cv_webhook_secret_versions')} WHERE id = 'p-new'`))[0]).not.toHaveProperty('staged_over_row_version');
  });
});

