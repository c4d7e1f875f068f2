import { ManualClock } from '@app/common';
import { DATABASE_KINDS } from '@app/testing';
import { SchedulerRegistry } from '@nestjs/schedule';
import { AUDIT_ANCHOR_JOB, AUDIT_CHAIN_BROKEN_EVENT, AuditAnchor, AuditAnchorService, AuditAnchorStore, AuditAction, computeEntryHash } from '@app/audit';
import type { AuditChainBrokenEvent } from '@app/audit';
import type { AuditLogEntry } from '@app/audit';
import { AuditFixture, startAuditOn } from '../test/fixtures';
import { event, exec, tenant } from '../test/harness';

/**
 * The anchor store as the lib sees it: an outside place that keeps every write. (The host's Key
 * Vault store has its own integration test against the local vault, and an end-to-end test.)
 */
class OutsideStore extends AuditAnchorStore {
  readonly history: AuditAnchor[] = [];
  /** Tenants whose anchor cannot be read (the store is down for them). */
  readonly unreadable = new Set<string>();
  reads = 0;
  listings = 0;
  async write(anchor: AuditAnchor): Promise<void> {
    this.history.push({ ...anchor });
  }
  async read(tenantId: string): Promise<AuditAnchor | null> {
    this.reads++;
    if (this.unreadable.has(tenantId)) throw new Error('anchor store unreachable: secret cv-anchor-MARKER-7f3 answered 503');
    return [...this.history].reverse().find((a) => a.tenantId === tenantId) ?? null;
  }
  async tenants(): Promise<string[]> {
    this.listings++;
    return [...new Set(this.history.map((a) => a.tenantId))];
  }
}

describe.each(DATABASE_KINDS)('audit anchoring on %s', (kind) => {
  let h: AuditFixture;
  let store: OutsideStore;
  const clock = new ManualClock(new Date('2026-06-01T00:00:00Z'));

  beforeAll(async () => {
    store = new OutsideStore();
    h = await startAuditOn(kind, { anchor: { enabled: true, cron: '*/5 * * * *' } }, { clock, anchors: store, schedule: true, lock: true });
  });
  afterAll(() => h?.close());

  const anchoring = () => h.moduleRef.get(AuditAnchorService);
  const rows = (t: string) => exec<AuditLogEntry[]>(h.ds, 'SELECT id, sequence, hash FROM cv_audit_log WHERE tenant_id = ? ORDER BY sequence', [t]);
  /** Drops a tampered tenant's anchors once a test is done, so later whole-log verifies see only their own tampering. */
  const forgetAnchors = (t: string) => store.history.splice(0, store.history.length, ...store.history.filter((x) => x.tenantId !== t));
  const writeRows = async (t: string, n: number) => {
    for (let i = 0; i < n; i++) await h.audit.record(event(t, { action: AuditAction.STORE, resource: `cred-${i}` }));
  };

  it('registers the audit-anchor cron job and anchors each moved head once', async () => {
    expect(h.moduleRef.get(SchedulerRegistry).doesExist('cron', AUDIT_ANCHOR_JOB)).toBe(true);
    const a = tenant();
    const b = tenant();
    await writeRows(a, 3);
    await writeRows(b, 1);
    const first = await anchoring().runOnce();
    expect(first).toMatchObject({ acquired: true, refused: [] });
    expect(await store.read(a)).toMatchObject({ tenantId: a, sequence: 3, anchoredAt: clock.now() });
    expect((await store.read(a))!.hash).toBe((await rows(a))[2].hash);
    // Nothing moved: nothing written, and not even read (the store's request budget is shared).
    // One more row: only that chain is anchored again.
    const before = store.history.length;
    const [reads, listings] = [store.reads, store.listings];
    expect(await anchoring().runOnce()).toMatchObject({ anchored: 0 });
    expect([store.reads, store.listings]).toEqual([reads, listings]);
    await writeRows(a, 1);
    expect(await anchoring().runOnce()).toMatchObject({ anchored: 1 });
    expect(store.history.length).toBe(before + 1);
    expect(await store.read(a)).toMatchObject({ sequence: 4 });
    await expect(h.audit.verify({ tenantId: a })).resolves.toMatchObject({ valid: true, anchorsChecked: 1 });
  });

  it('detects the newest rows deleted (the chain alone still verifies)', async () => {
    const t = tenant();
    await writeRows(t, 5);
    await anchoring().runOnce();
    await exec(h.ds, 'DELETE FROM cv_audit_log WHERE tenant_id = ? AND sequence > 2', [t]);
    const r = await h.audit.verify({ tenantId: t });
    expect(r).toMatchObject({ valid: false, firstBad: { tenantId: t, sequence: 5, reason: 'truncated' } });
    expect(r.firstBad!.id).toBe((await rows(t))[1].id);
    forgetAnchors(t);
  });

  it('detects a chain deleted outright, even when verifying every tenant', async () => {
    const t = tenant();
    await writeRows(t, 2);
    await anchoring().runOnce();
    await exec(h.ds, 'DELETE FROM cv_audit_log WHERE tenant_id = ?', [t]);
    await expect(h.audit.verify()).resolves.toMatchObject({ valid: false, firstBad: { tenantId: t, sequence: 2, reason: 'truncated', id: '' } });
    forgetAnchors(t);
    await expect(h.audit.verify()).resolves.toMatchObject({ valid: true });
  });

  it('detects a chain rewritten with every hash recomputed, and refuses to anchor it again', async () => {
    const t = tenant();
    await writeRows(t, 4);
    await anchoring().runOnce();
    // An attacker with database access edits row 2 and re-hashes it and every later row: links and hashes all check out.
    const all = await exec<Array<Record<string, unknown>>>(h.ds, 'SELECT * FROM cv_audit_log WHERE tenant_id = ? ORDER BY sequence', [t]);
    let prev = String(all[0].hash);
    for (const raw of all.slice(1)) {
      const entry = {
        id: String(raw.id),
        tenantId: t,
        sequence: Number(raw.sequence),
        occurredAt: new Date(Number(raw.occurred_at)),
        action: String(raw.action),
        resource: Number(raw.sequence) === 2 ? 'forged-resource' : String(raw.resource),
        actorId: String(raw.actor_id),
        actorIp: (raw.actor_ip as string | null) ?? null,
        userAgent: (raw.user_agent as string | null) ?? null,
        result: String(raw.result),
        errorCode: (raw.error_code as string | null) ?? null,
        durationMs: raw.duration_ms === null ? null : Number(raw.duration_ms),
        correlationId: (raw.correlation_id as string | null) ?? null,
        details: raw.details === null ? null : (JSON.parse(String(raw.details)) as Record<string, unknown>),
        previousHash: prev,
      };
      const hash = computeEntryHash(entry);
      await exec(h.ds, 'UPDATE cv_audit_log SET resource = ?, previous_hash = ?, hash = ? WHERE id = ?', [entry.resource, prev, hash, entry.id]);
      prev = hash;
    }
    const forged = await rows(t);
    const alerts: AuditChainBrokenEvent[] = [];
    const listener = (e: AuditChainBrokenEvent) => alerts.push(e);
    h.events.on(AUDIT_CHAIN_BROKEN_EVENT, listener);
    const brokenBefore = h.audit.stats.brokenChains;
    const r = await h.audit.verify({ tenantId: t });
    // Links and hashes all check out; only the anchor shows the anchored row now has another hash.
    expect(r).toMatchObject({ valid: false, firstBad: { tenantId: t, sequence: 4, reason: 'anchor_mismatch', id: forged[3].id } });
    await writeRows(t, 1);
    const run = await anchoring().runOnce();
    expect(run.refused).toContain(t);
    expect(await store.read(t)).toMatchObject({ sequence: 4 });
    // Both findings are tamper signals the host can alert on: an event each, and a counter.
    h.events.off(AUDIT_CHAIN_BROKEN_EVENT, listener);
    expect(alerts).toEqual([
      { tenantId: t, id: forged[3].id, sequence: 4, reason: 'anchor_mismatch', foundBy: 'verify' },
      { tenantId: t, id: forged[3].id, sequence: 4, reason: 'anchor_mismatch', foundBy: 'anchor' },
    ]);
    expect(h.audit.stats.brokenChains).toBe(brokenBefore + 2);
    forgetAnchors(t);
    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, anchorsChecked: 0 }); // the forgery alone is consistent
  });

  it('a store failing for one chain leaves the others anchored, and verify refuses to vouch for that chain', async () => {
    const broken = tenant('a');
    const fine = tenant('z');
    await writeRows(broken, 1);
    await writeRows(fine, 1);
    store.unreadable.add(broken);
    try {
      const run = await anchoring().runOnce();
      expect(run.failed).toEqual([broken]);
      expect(await store.read(fine)).toMatchObject({ sequence: 1 });
      const refused = await h.audit.verify({ tenantId: broken }).catch((e: Error) => e);
      expect(refused).toMatchObject({ codeName: 'AUDIT_ANCHOR_UNAVAILABLE' });
      // The store's own text (it may name a vault secret) is not repeated to the caller: only its class.
      expect((refused as Error).message).toContain('could not be read');
      expect((refused as Error).message).not.toContain('MARKER');
    } finally {
      store.unreadable.delete(broken);
    }
    expect((await anchoring().runOnce()).failed).toEqual([]);
    await expect(h.audit.verify({ tenantId: broken })).resolves.toMatchObject({ valid: true, anchorsChecked: 1 });
  });

  it('a chain pruned past its anchor still verifies', async () => {
    const t = tenant();
    await writeRows(t, 3);
    await anchoring().runOnce();
    clock.advance(100 * 86_400_000);
    await writeRows(t, 2);
    await h.audit.prune(new Date(clock.now().getTime() - 86_400_000));
    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, anchorsChecked: 1 });
    // Retention anchored its checkpoint (row 6) before deleting rows 1-3, and says how far rows may be gone.
    expect(await store.read(t)).toMatchObject({ sequence: 6, prunedThrough: 3 });
    expect((await rows(t)).map((r) => Number(r.sequence))).toEqual([4, 5, 6]);
    // An anchor pass later carries it forward.
    await writeRows(t, 1);
    await anchoring().runOnce();
    expect(await store.read(t)).toMatchObject({ sequence: 7, prunedThrough: 3 });
  });

  it('rows deleted behind a forged retention checkpoint are found, and the forged head is not anchored', async () => {
    const t = tenant();
    await writeRows(t, 10);
    await anchoring().runOnce(); // anchored at 10, nothing pruned
    await writeRows(t, 2);
    const chain = await exec<AuditLogEntry[]>(h.ds, 'SELECT * FROM cv_audit_log WHERE tenant_id = ? ORDER BY sequence', [t]);
    const head = chain[chain.length - 1];
    const [row11] = chain.filter((r) => Number(r.sequence) === 11);
    // Someone with write access to the database appends a correctly hashed checkpoint claiming rows 1-11
    // were pruned, then deletes them: the chain alone verifies.
    const forged = {
      id: '019b7a00-0000-7000-8000-0000000000aa',
      tenantId: t,
      sequence: 13,
      occurredAt: clock.now(),
      action: AuditAction.RETENTION_CHECKPOINT,
      resource: 'audit-log',
      actorId: 'system:audit-retention',
      actorIp: null,
      userAgent: null,
      result: 'success',
      errorCode: null,
      durationMs: null,
      correlationId: null,
      details: { prunedThroughSequence: 11, prunedThroughHash: row11.hash, deleted: 11, olderThan: clock.now().toISOString() },
      previousHash: head.hash,
    } as unknown as AuditLogEntry;
    const hash = computeEntryHash(forged);
    await exec(
      h.ds,
      'INSERT INTO cv_audit_log (id, tenant_id, sequence, occurred_at, action, resource, actor_id, result, details, previous_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [forged.id, t, 13, clock.now().getTime(), forged.action, forged.resource, forged.actorId, 'success', JSON.stringify(forged.details), head.hash, hash],
    );
    await exec(h.ds, 'DELETE FROM cv_audit_log WHERE tenant_id = ? AND sequence <= 11', [t]);

    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: false, firstBad: { tenantId: t, sequence: 1, reason: 'truncated' } });
    const run = await anchoring().runOnce();
    expect(run.refused).toContain(t);
    expect(await store.read(t)).toMatchObject({ sequence: 10, prunedThrough: 0 });
    forgetAnchors(t);
  });

  it('an anchor pass and retention at the same moment both finish at once (the same lock order)', async () => {
    const ts = [tenant(), tenant(), tenant()];
    for (const t of ts) await writeRows(t, 3);
    clock.advance(100 * 86_400_000);
    for (const t of ts) await writeRows(t, 1);
    const started = Date.now();
    const [anchored] = await Promise.all([anchoring().runOnce(), h.audit.prune(new Date(clock.now().getTime() - 86_400_000))]);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(anchored.refused).toEqual([]);
    for (const t of ts) await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true });
  });

  it('retention keeps the rows of a chain whose checkpoint cannot be anchored, and prunes them once it can', async () => {
    const t = tenant();
    await writeRows(t, 3);
    await anchoring().runOnce();
    clock.advance(100 * 86_400_000);
    await writeRows(t, 1);
    store.unreadable.add(t);
    try {
      await h.audit.prune(new Date(clock.now().getTime() - 86_400_000));
    } finally {
      store.unreadable.delete(t);
    }
    expect((await rows(t)).map((r) => Number(r.sequence))).toEqual([1, 2, 3, 4, 5]); // the unanchored checkpoint (5) stays: harmless
    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true });
    await h.audit.prune(new Date(clock.now().getTime() - 86_400_000));
    expect((await rows(t)).map((r) => Number(r.sequence))).toEqual([4, 5, 6]);
    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, anchorsChecked: 1 });
  });
});

describe('audit anchoring misconfigured', () => {
  it('refuses to start when anchoring is enabled without an AuditAnchorStore, naming the packaged Key Vault one', async () => {
    // An embedding app has no host store to provide: the error points at the one the package ships.
    await expect(startAuditOn('sqlite', { anchor: { enabled: true } }, { schedule: true })).rejects.toThrow(
      /no AuditAnchorStore is provided: provide one globally \(e\.g\. KeyVaultAuditAnchorStore from the credentials entry\)/,
    );
  });
});
