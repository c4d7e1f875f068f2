import { TransactionRunner } from '@app/common';
import { DATABASE_KINDS } from '@app/testing';
import { AuditAction, AuditInvalidEventError, AuditLogEntry } from '@app/audit';
import { AuditFixture, startAuditOn } from '../test/fixtures';
import { countRows, event, tenant } from '../test/harness';

describe.each(DATABASE_KINDS)('audit recordMany on %s', (kind) => {
  let h: AuditFixture;
  let runner: TransactionRunner;

  beforeAll(async () => {
    h = await startAuditOn(kind, { suspicious: { enabled: false } }, { lock: true });
    runner = new TransactionRunner(h.ds);
  });
  afterAll(() => h?.close());

  const batch = (t: string, k: string, n: number) => Array.from({ length: n }, (_, i) => event(t, { resource: `cred-${k}-${i}`, details: { k, i } }));

  it('concurrent batches of one tenant, in transactions of their own and in callers’ transactions (two connections on PostgreSQL), append one linear chain that verifies', async () => {
    const t = tenant('many');
    const other = tenant('other');
    await h.audit.record(event(t, { resource: 'first' }));
    await Promise.all([
      h.audit.recordMany(batch(t, 'own-a', 40)),
      h.audit.recordMany([...batch(t, 'own-b', 20), ...batch(other, 'own-b', 20)]),
      runner.run(async () => {
        await h.audit.record(event(t, { resource: 'caller-a-single', action: AuditAction.UPDATE_METADATA }));
        await h.audit.recordMany(batch(t, 'caller-a', 30));
      }),
      runner.run(async () => {
        await h.audit.recordMany(batch(t, 'caller-b', 30));
        await h.audit.recordMany(batch(other, 'caller-b', 10));
      }),
      // A caller that rolls back takes its batch with it.
      runner
        .run(async () => {
          await h.audit.recordMany(batch(t, 'rolled-back', 25));
          throw new Error('the caller fails after the batch');
        })
        .catch(() => undefined),
    ]);

    expect(await countRows(h.ds, t)).toBe(1 + 40 + 20 + 1 + 30 + 30);
    expect(await countRows(h.ds, other)).toBe(30);
    const rows = await h.ds.getRepository(AuditLogEntry).find({ where: { tenantId: t }, order: { sequence: 'ASC' } });
    expect(rows.map((r) => r.sequence)).toEqual(rows.map((_, i) => i + 1));
    expect(rows.some((r) => r.resource.startsWith('cred-rolled-back'))).toBe(false);
    // Each batch keeps its order within the chain.
    const ownA = rows.filter((r) => r.resource.startsWith('cred-own-a-')).map((r) => r.resource);
    expect(ownA).toEqual(Array.from({ length: 40 }, (_, i) => `cred-own-a-${i}`));
    for (const tenantId of [t, other]) expect(await h.audit.verify({ tenantId })).toMatchObject({ valid: true });
  });

  it('a bad event in the middle of a batch writes nothing of it; inside a caller’s failed transaction nothing either', async () => {
    const t = tenant('bad');
    const events = batch(t, 'x', 10);
    events[5] = { ...events[5], resource: '' };
    await expect(h.audit.recordMany(events)).rejects.toBeInstanceOf(AuditInvalidEventError);
    expect(await countRows(h.ds, t)).toBe(0);

    await expect(
      runner.run(async () => {
        await h.audit.recordMany(batch(t, 'y', 10));
        await runner.manager.query('SELECT * FROM no_such_table_for_this_test');
      }),
    ).rejects.toThrow();
    expect(await countRows(h.ds, t)).toBe(0);
    await h.audit.recordMany([]);
    expect(await countRows(h.ds, t)).toBe(0);
  });
});
