import { DistributedLock, ManualClock, TransactionGate } from '@app/common';
import { DATABASE_KINDS } from '@app/testing';
import {
  AuditAction,
  AuditLogEntry,
  AuditResult,
  AuditRetentionService,
  computeEntryHash,
} from '@app/audit';
import { AuditFixture, startAuditOn } from '../test/fixtures';
import { countRows, event, exec, tenant } from '../test/harness';

describe.each(DATABASE_KINDS)('audit hash chain on %s', (kind) => {
  let h: AuditFixture;
  const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));

  beforeAll(async () => (h = await startAuditOn(kind, { readBuffer: { batchSize: 25, maxSize: 100 }, suspicious: { enabled: false } }, { clock, lock: true })));
  afterAll(() => h?.close());

  async function seed(t: string, n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      await h.audit.record(event(t, { resource: `cred-${i}`, details: { i } }));
      clock.advance(1000);
    }
  }

  async function rowAt(t: string, sequence: number): Promise<AuditLogEntry> {
    const row = await h.ds.getRepository(AuditLogEntry).findOneByOrFail({ tenantId: t, sequence });
    return row;
  }

  it('200 concurrent writers (own transactions, caller transactions that commit or roll back, buffered reads) leave every chain linear and valid', async () => {
    const tenants = [tenant('c0'), tenant('c1'), tenant('c2')];
    // Callers run their transactions through the shared gate (required on SQLite, a pass-through on PostgreSQL).
    const gate = TransactionGate.for(h.ds);
    let rolledBack = 0;
    const writes = Array.from({ length: 200 }, (_, i) => {
      const t = tenants[i % 3];
      const e = event(t, { resource: `cred-${i}`, details: { i } });
      switch (i % 5) {
        case 0:
          return h.audit.record(e);
        case 1:
          return gate.transaction((m) => h.audit.record({ ...e, action: AuditAction.UPDATE_METADATA }, m));
        case 2:
          return h.audit.recordRead(e);
        case 3:
          return gate
            .transaction(async (m) => {
              await h.audit.record({ ...e, action: AuditAction.DELETE }, m);
              throw new Error('caller rolls back');
            })
            .catch(() => rolledBack++);
        default:
          return h.audit.record({ ...e, action: AuditAction.ACCESS_DENIED, result: AuditResult.DENIED });
      }
    });
    await Promise.all(writes);
    await h.audit.flush();
    expect(rolledBack).toBe(40);

    let total = 0;
    for (const t of tenants) {
      const seqs = (await exec<Array<{ sequence: string | number }>>(h.ds, 'SELECT sequence FROM cv_audit_log WHERE tenant_id = ? ORDER BY sequence', [t])).map(
        (r) => Number(r.sequence),
      );
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
      total += seqs.length;
    }
    expect(total).toBe(160);
    const deletes = await exec<unknown[]>(h.ds, "SELECT id FROM cv_audit_log WHERE action = 'delete' AND tenant_id IN (?, ?, ?)", tenants);
    expect(deletes).toEqual([]); // rolled-back rows left no trace
    for (const t of tenants) await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true });
    const all = await h.audit.verify();
    expect(all.valid).toBe(true);
    expect(all.checked).toBeGreaterThanOrEqual(160);
  });

  describe('tampering is detected and the first bad row named', () => {
    it('a row edited in place → hash_mismatch at that row', async () => {
      const t = tenant('edit');
      await seed(t, 12);
      const victim = await rowAt(t, 7);
      await exec(h.ds, "UPDATE cv_audit_log SET resource = 'someone-elses-cred' WHERE id = ?", [victim.id]);
      await expect(h.audit.verify({ tenantId: t })).resolves.toEqual({
        valid: false,
        checked: 7,
        chains: 1,
        anchorsChecked: 0,
        firstBad: { id: victim.id, sequence: 7, tenantId: t, reason: 'hash_mismatch' },
      });
    });

    it('a number edited out of range (a time no writer stores) → hash_mismatch at that row, not a crash', async () => {
      const t = tenant('range');
      await seed(t, 6);
      const victim = await rowAt(t, 3);
      await exec(h.ds, 'UPDATE cv_audit_log SET occurred_at = ? WHERE id = ?', [kind === 'postgres' ? '9000000000000000000' : 9e18, victim.id]);
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({
        valid: false,
        firstBad: { id: victim.id, sequence: 3, tenantId: t, reason: 'hash_mismatch' },
      });
      // A whole-log verify does not crash on it either (it reports the first broken chain of the log).
      await expect(h.audit.verify()).resolves.toMatchObject({ valid: false, firstBad: { reason: 'hash_mismatch' } });
    });

    it('a row edited and re-hashed → broken_link naming that row', async () => {
      const t = tenant('rehash');
      await seed(t, 12);
      const victim = await rowAt(t, 7);
      const forged = { ...victim, result: AuditResult.SUCCESS, actorId: 'innocent' };
      await exec(h.ds, 'UPDATE cv_audit_log SET actor_id = ?, hash = ? WHERE id = ?', ['innocent', computeEntryHash(forged), victim.id]);
      const r = await h.audit.verify({ tenantId: t });
      expect(r).toMatchObject({ valid: false, firstBad: { id: victim.id, sequence: 7, reason: 'broken_link' } });
    });

    it('a row deleted → sequence_gap at the row after it', async () => {
      const t = tenant('delete');
      await seed(t, 12);
      const after = await rowAt(t, 8);
      await exec(h.ds, 'DELETE FROM cv_audit_log WHERE tenant_id = ? AND sequence = 7', [t]);
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({
        valid: false,
        firstBad: { id: after.id, sequence: 8, reason: 'sequence_gap' },
      });
    });

    it('the first row deleted (no retention checkpoint) → sequence_gap', async () => {
      const t = tenant('delete-first');
      await seed(t, 5);
      const second = await rowAt(t, 2);
      await exec(h.ds, 'DELETE FROM cv_audit_log WHERE tenant_id = ? AND sequence = 1', [t]);
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({
        valid: false,
        firstBad: { id: second.id, sequence: 2, reason: 'sequence_gap' },
      });
    });

    it('a row inserted (later rows renumbered, forged row correctly hashed) → broken_link at the inserted row', async () => {
      const t = tenant('insert');
      await seed(t, 12);
      const prev = await rowAt(t, 6);
      // Make room at 7 without tripping the unique (tenant, sequence) index.
      await exec(h.ds, 'UPDATE cv_audit_log SET sequence = -sequence WHERE tenant_id = ? AND sequence >= 7', [t]);
      await exec(h.ds, 'UPDATE cv_audit_log SET sequence = 1 - sequence WHERE tenant_id = ? AND sequence < 0', [t]);
      const forged = { ...prev, id: '11111111-1111-4111-8111-111111111111', sequence: 7, resource: 'planted', previousHash: prev.hash };
      const hash = computeEntryHash(forged);
      await exec(
        h.ds,
        `INSERT INTO cv_audit_log (id, tenant_id, sequence, occurred_at, action, resource, actor_id, actor_ip, user_agent, result,
           error_code, duration_ms, correlation_id, details, previous_hash, hash)
         SELECT ?, tenant_id, 7, occurred_at, action, 'planted', actor_id, actor_ip, user_agent, result, error_code, duration_ms,
           correlation_id, details, ?, ? FROM cv_audit_log WHERE id = ?`,
        [forged.id, prev.hash, hash, prev.id],
      );
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({
        valid: false,
        firstBad: { id: forged.id, sequence: 7, reason: 'broken_link' },
      });
    });

    it('a row appended with a made-up hash → hash_mismatch at it', async () => {
      const t = tenant('append');
      await seed(t, 4);
      const head = await rowAt(t, 4);
      await exec(
        h.ds,
        `INSERT INTO cv_audit_log (id, tenant_id, sequence, occurred_at, action, resource, actor_id, result, previous_hash, hash)
         VALUES ('22222222-2222-4222-8222-222222222222', ?, 5, ?, 'read', 'x', 'ghost', 'success', ?, ?)`,
        [t, clock.now().getTime(), head.hash, 'ab'.repeat(32)],
      );
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({
        valid: false,
        firstBad: { id: '22222222-2222-4222-8222-222222222222', sequence: 5, reason: 'hash_mismatch' },
      });
    });

    it('two rows swapped → reordered at the first of them', async () => {
      const t = tenant('swap');
      await seed(t, 12);
      const a = await rowAt(t, 5);
      const b = await rowAt(t, 8);
      await exec(h.ds, 'UPDATE cv_audit_log SET sequence = -1 WHERE id = ?', [a.id]);
      await exec(h.ds, 'UPDATE cv_audit_log SET sequence = 5 WHERE id = ?', [b.id]);
      await exec(h.ds, 'UPDATE cv_audit_log SET sequence = 8 WHERE id = ?', [a.id]);
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({
        valid: false,
        firstBad: { id: b.id, sequence: 5, reason: 'reordered' },
      });
    });

    it('verify() over all chains names the broken tenant', async () => {
      // Earlier tests left broken chains; the report names one of them, never a valid one.
      const r = await h.audit.verify();
      expect(r.valid).toBe(false);
      expect(r.firstBad?.tenantId).toMatch(/^(edit|rehash|delete|delete-first|insert|append|swap)-/);
    });
  });

  describe('retention', () => {
    it('prunes old rows, writes a checkpoint, and verify stays green — also across repeated prunes', async () => {
      const t = tenant('ret');
      clock.set(new Date('2026-02-01T00:00:00Z'));
      await seed(t, 10); // 10 rows on Feb 1st
      clock.set(new Date('2026-02-10T00:00:00Z'));
      await seed(t, 5); // 5 rows on Feb 10th
      const cutoff = new Date('2026-02-05T00:00:00Z');

      const { deleted } = await h.audit.prune(cutoff);
      expect(deleted).toBeGreaterThanOrEqual(10); // other tenants' old rows go too
      expect(await countRows(h.ds, t)).toBe(6); // 5 kept + checkpoint
      const cp = (await h.audit.query({ tenantId: t, action: AuditAction.RETENTION_CHECKPOINT })).items;
      expect(cp).toHaveLength(1);
      const prunedLast = 10;
      expect(cp[0]).toMatchObject({ sequence: 16, details: expect.objectContaining({ prunedThroughSequence: prunedLast, deleted: 10 }) });
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 6 });

      // The chain goes on after the checkpoint, and a second prune supersedes the first checkpoint.
      await seed(t, 3);
      clock.set(new Date('2026-03-01T00:00:00Z'));
      await h.audit.record(event(t));
      await h.audit.prune(new Date('2026-02-20T00:00:00Z'));
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 2 });
      const rows = (await h.audit.query({ tenantId: t, order: 'asc' })).items;
      expect(rows.map((r) => r.action)).toEqual(['read', 'retention_checkpoint']);
      expect(rows[1].details).toMatchObject({ prunedThroughSequence: 19 });

      // The whole surviving system still verifies.
      const t2 = tenant('ret-other');
      await seed(t2, 2);
      await expect(h.audit.verify({ tenantId: t2 })).resolves.toMatchObject({ valid: true });
    });

    it('pruning a whole chain keeps it linked: the checkpoint continues the sequence', async () => {
      const t = tenant('ret-all');
      clock.set(new Date('2026-04-01T00:00:00Z'));
      await seed(t, 4);
      clock.set(new Date('2026-04-20T00:00:00Z'));
      await h.audit.prune(new Date('2026-04-10T00:00:00Z'));
      const next = await h.audit.record(event(t));
      expect(next.sequence).toBe(6); // 4 pruned, checkpoint = 5
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 2 });
    });

    it('rows deleted after a prune are still caught (the checkpoint pins where the chain starts)', async () => {
      const t = tenant('ret-tamper');
      clock.set(new Date('2026-05-01T00:00:00Z'));
      await seed(t, 3);
      clock.set(new Date('2026-05-20T00:00:00Z'));
      await seed(t, 4);
      await h.audit.prune(new Date('2026-05-10T00:00:00Z'));
      const firstKept = await rowAt(t, 4);
      const secondKept = await rowAt(t, 5);
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true });
      await exec(h.ds, 'DELETE FROM cv_audit_log WHERE id = ?', [firstKept.id]);
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({
        valid: false,
        firstBad: { id: secondKept.id, sequence: 5, reason: 'sequence_gap' },
      });
    });

    it('the retention job prunes under the distributed lock and skips when another replica holds it', async () => {
      const retention = h.moduleRef.get(AuditRetentionService);
      const lock = h.moduleRef.get(DistributedLock);
      const t = tenant('ret-job');
      clock.set(new Date('2026-07-01T00:00:00Z'));
      await seed(t, 3);
      clock.set(new Date('2026-12-01T00:00:00Z')); // > 90 days later
      const skipped = await lock.tryRun('audit-retention', () => retention.runOnce());
      expect(skipped).toEqual({ acquired: true, value: expect.objectContaining({ acquired: false, deleted: 0 }) });
      expect(await countRows(h.ds, t)).toBe(3);
      const ran = await retention.runOnce();
      expect(ran.acquired).toBe(true);
      expect(ran.cutoff).toEqual(new Date('2026-09-02T00:00:00Z'));
      expect(ran.deleted).toBeGreaterThanOrEqual(3);
      expect(await countRows(h.ds, t)).toBe(1);
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 1 });
    });
  });
});
