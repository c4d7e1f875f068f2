import { ManualClock } from '@app/common';
import { DATABASE_KINDS } from '@app/testing';
import { AuditLogEntry } from '@app/audit';
import { AuditFixture, startAuditOn } from '../test/fixtures';
import { event, exec, tenant } from '../test/harness';

// verify hashes the stored details text as is; these pin what it makes of details edited in the table.
describe.each(DATABASE_KINDS)('audit verify and the stored details text on %s', (kind) => {
  let h: AuditFixture;
  const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));

  beforeAll(async () => (h = await startAuditOn(kind, { readBuffer: { batchSize: 25, maxSize: 100 }, suspicious: { enabled: false } }, { clock, lock: true })));
  afterAll(() => h?.close());

  /** A chain of 8 rows with details; returns row 5 after setting its stored details text to `text`. */
  async function editDetails(name: string, text: string | null): Promise<AuditLogEntry> {
    const t = tenant(name);
    for (let i = 0; i < 8; i++) {
      await h.audit.record(event(t, { resource: `cred-${i}`, details: { i, b: 'x', nested: { z: 1, a: [true, null] } } }));
      clock.advance(1000);
    }
    const victim = await h.ds.getRepository(AuditLogEntry).findOneByOrFail({ tenantId: t, sequence: 5 });
    expect(await exec(h.ds, 'SELECT details FROM cv_audit_log WHERE id = ?', [victim.id])).toEqual([{ details: '{"b":"x","i":4,"nested":{"a":[true,null],"z":1}}' }]);
    await exec(h.ds, 'UPDATE cv_audit_log SET details = ? WHERE id = ?', [text, victim.id]);
    return victim;
  }

  it('details changed to another value → hash_mismatch at that row', async () => {
    const victim = await editDetails('details-value', '{"b":"x","i":5,"nested":{"a":[true,null],"z":1}}');
    await expect(h.audit.verify({ tenantId: victim.tenantId })).resolves.toMatchObject({
      valid: false,
      checked: 5,
      firstBad: { id: victim.id, sequence: 5, reason: 'hash_mismatch' },
    });
  });

  it('details cleared → hash_mismatch at that row', async () => {
    const victim = await editDetails('details-null', null);
    await expect(h.audit.verify({ tenantId: victim.tenantId })).resolves.toMatchObject({
      valid: false,
      firstBad: { id: victim.id, sequence: 5, reason: 'hash_mismatch' },
    });
  });

  it('details replaced by text that is not JSON → hash_mismatch (not an error)', async () => {
    const victim = await editDetails('details-garbage', '{"b":"x","i":4,');
    await expect(h.audit.verify({ tenantId: victim.tenantId })).resolves.toMatchObject({
      valid: false,
      firstBad: { id: victim.id, sequence: 5, reason: 'hash_mismatch' },
    });
  });

  it('the same value stored as non-canonical JSON (spacing, key order) still verifies, as it did when verify parsed it', async () => {
    const victim = await editDetails('details-spacing', '{ "nested": { "z": 1, "a": [ true, null ] }, "i": 4.0, "b": "x" }');
    await expect(h.audit.verify({ tenantId: victim.tenantId })).resolves.toMatchObject({ valid: true, checked: 8 });
  });
});
