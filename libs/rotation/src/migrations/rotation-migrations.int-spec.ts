import type { DataSource } from 'typeorm';
import { DATABASE_KINDS, useMigrationDatabase } from '@app/testing';
import { ROTATION_ENTITIES, ROTATION_MIGRATIONS } from '../rotation.schema';
import { RotationHistoryOneRowPerRotation1940000000000 } from './index';

const before = ROTATION_MIGRATIONS.filter((m) => m !== RotationHistoryOneRowPerRotation1940000000000);

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

    const after = await bed.migrate(ROTATION_ENTITIES, ROTATION_MIGRATIONS);
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
