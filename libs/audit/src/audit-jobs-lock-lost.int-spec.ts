import { Logger } from '@nestjs/common';
import { DistributedLock, LOCK_KEYS, ManualClock, PostgresAdvisoryLock, ScheduledJobs } from '@app/common';
import { CapturingLogger, createTestDatabase, endLockSession, type TestDatabase } from '@app/testing';
import { AUDIT_ANCHOR_JOB, AUDIT_RETENTION_JOB, AuditAction, AuditAnchor, AuditAnchorStore } from '@app/audit';
import { AuditHarness, countRows, event, startAudit, tenant } from '../test/harness';
import { AuditRepository } from './audit.repository';

/** Both replicas' anchor store is one outside place; each replica's writes are told apart, and one can be held. */
class SharedStore extends AuditAnchorStore {
  readonly writes: string[] = [];
  /** The next write waits here (after `entered`) until released. */
  hold?: { entered: () => void; release: Promise<void> };
  constructor(private readonly history: AuditAnchor[]) {
    super();
  }
  async write(anchor: AuditAnchor): Promise<void> {
    this.writes.push(anchor.tenantId);
    const hold = this.hold;
    this.hold = undefined;
    if (hold) {
      hold.entered();
      await hold.release;
    }
    this.history.push({ ...anchor });
  }
  async read(tenantId: string): Promise<AuditAnchor | null> {
    return [...this.history].reverse().find((a) => a.tenantId === tenantId) ?? null;
  }
  async tenants(): Promise<string[]> {
    return [...new Set(this.history.map((a) => a.tenantId))];
  }
}

function gate() {
  let entered!: () => void;
  let release!: () => void;
  const inside = new Promise<void>((r) => (entered = r));
  const released = new Promise<void>((r) => (release = r));
  return { hold: { entered, release: released }, inside, release };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Two replicas on one PostgreSQL: the audit jobs of replica A lose their lock's session (ended by the test, found by
 * the job's own advisory key in pg_locks) while A works on a chain. A stops before its next chain; B takes the lock.
 */
describe('audit jobs whose lock session ends (two replicas on postgres)', () => {
  let db: TestDatabase;
  let a: AuditHarness;
  let b: AuditHarness;
  let storeA: SharedStore;
  let storeB: SharedStore;
  const clock = new ManualClock(new Date('2026-06-01T00:00:00Z'));
  const logger = new CapturingLogger();
  const yearly = { enabled: true, cron: '0 0 1 1 *' };

  beforeEach(async () => {
    db = await createTestDatabase('postgres');
    const history: AuditAnchor[] = [];
    storeA = new SharedStore(history);
    storeB = new SharedStore(history);
    const options = { anchor: yearly, retention: { ...yearly, days: 30 } };
    a = await startAudit(db, options, { clock, anchors: storeA, schedule: true, lock: true });
    b = await startAudit(db, options, { clock, anchors: storeB, schedule: true, lock: true });
    // After the testing modules, which set a logger of their own.
    Logger.overrideLogger(logger);
  });

  afterEach(async () => {
    Logger.overrideLogger(new Logger());
    logger.lines.length = 0;
    await Promise.all([a?.close(), b?.close()]);
    await db?.drop();
  });

  const writeRows = async (t: string, n: number) => {
    for (let i = 0; i < n; i++) await a.audit.record(event(t, { action: AuditAction.STORE, resource: `cred-${i}` }));
  };

  /** Runs `job` on `replica` until its next anchor write is under way at `store`, held there until `release()`. */
  async function runUntilWrite(replica: AuditHarness, store: SharedStore, job: string) {
    const g = gate();
    store.hold = g.hold;
    const outcome = replica.moduleRef.get(ScheduledJobs).runNow(job);
    await g.inside;
    return { outcome, release: g.release };
  }

  /** Ends A's session of `key` while A's job is held inside its first chain; B can take the lock then. */
  async function loseLockInFirstChain(job: string, key: string): Promise<{ outcome: Promise<string> }> {
    const { outcome, release } = await runUntilWrite(a, storeA, job);
    const lockA = a.moduleRef.get(DistributedLock) as PostgresAdvisoryLock;
    await endLockSession(b.ds, lockA.advisoryId(key));
    await expect(b.moduleRef.get(DistributedLock).tryRun(key, async () => 'b')).resolves.toEqual({ acquired: true, value: 'b' });
    for (let i = 0; i < 250 && !logger.lines.some((l) => l.includes('was lost while held')); i++) await sleep(20);
    release();
    return { outcome };
  }

  /** Three rows past retention and one kept, so a retention run prunes 1-3 behind a checkpoint (sequence 5). */
  async function prunableChain(): Promise<string> {
    const t = tenant();
    await writeRows(t, 3);
    clock.advance(100 * 86_400_000);
    await writeRows(t, 1);
    return t;
  }

  /** Holds A's next anchor pass once it has read its chain (head and first row), before it goes on to write. */
  function holdAfterChainRead() {
    const g = gate();
    const repo = a.moduleRef.get(AuditRepository);
    const firstSequence = repo.firstSequence.bind(repo);
    jest.spyOn(repo, 'firstSequence').mockImplementationOnce(async (...args) => {
      const first = await firstSequence(...args);
      g.hold.entered();
      await g.hold.release;
      return first;
    });
    return g;
  }

  /** Ends A's session of `key` as a failover would, and waits until A has heard of it. */
  async function loseLock(key: string): Promise<void> {
    const lockA = a.moduleRef.get(DistributedLock) as PostgresAdvisoryLock;
    await endLockSession(b.ds, lockA.advisoryId(key));
    for (let i = 0; i < 250 && !logger.lines.some((l) => l.includes('was lost while held')); i++) await sleep(20);
  }

  const overwriteErrors = (t: string) => logger.lines.filter((l) => l.startsWith('error') && l.includes(`audit anchor of tenant ${t}`) && l.includes('may have overwritten'));

  function expectStoppedWithWarning(job: string): void {
    const status = a.moduleRef.get(ScheduledJobs).status().find((s) => s.name === job);
    expect(status).toMatchObject({ lastOutcome: 'failed', lastError: expect.stringContaining('LOCK_LOST') });
    expect(logger.lines.filter((l) => l.includes(`"${job}" job`))).toEqual([expect.stringMatching(new RegExp(`^warn The "${job}" job stopped: .*LOCK_LOST`))]);
  }

  it('anchoring stops before its next chain; the other replica anchors the rest, each chain once', async () => {
    const ts = [tenant(), tenant(), tenant()];
    for (const t of ts) await writeRows(t, 2);

    const { outcome } = await loseLockInFirstChain(AUDIT_ANCHOR_JOB, LOCK_KEYS.auditAnchor);
    expect(await outcome).toBe('failed');
    expectStoppedWithWarning(AUDIT_ANCHOR_JOB);
    expect(storeA.writes).toHaveLength(1);

    expect(await b.moduleRef.get(ScheduledJobs).runNow(AUDIT_ANCHOR_JOB)).toBe('success');
    expect(storeB.writes.sort()).toEqual(ts.filter((t) => t !== storeA.writes[0]).sort());
    for (const t of ts) await expect(a.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, anchorsChecked: 1 });
  });

  it.each([
    ['its own lock', LOCK_KEYS.auditRetention],
    ['the anchoring lock it holds meanwhile', LOCK_KEYS.auditAnchor],
  ])('retention losing %s stops before its delete and its next chain, leaving the chain in flight checkpointed; the other replica prunes the rest', async (_lost, key) => {
    const ts = [tenant(), tenant(), tenant()];
    for (const t of ts) await writeRows(t, 3);
    clock.advance(100 * 86_400_000);
    for (const t of ts) await writeRows(t, 1);

    const { outcome } = await loseLockInFirstChain(AUDIT_RETENTION_JOB, key);
    expect(await outcome).toBe('failed');
    expectStoppedWithWarning(AUDIT_RETENTION_JOB);
    // The chain in flight got its checkpoint (committed, then anchored) but lost the lock before its delete: its rows
    // stay, as after a crash. The others were not touched.
    const [first] = storeA.writes;
    expect(storeA.writes).toHaveLength(1);
    for (const t of ts) expect(await countRows(a.ds, t)).toBe(t === first ? 5 : 4);
    for (const t of ts) await expect(a.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true });

    expect(await b.moduleRef.get(ScheduledJobs).runNow(AUDIT_RETENTION_JOB)).toBe('success');
    // Every chain pruned through 3 now; the one A left keeps A's checkpoint too (a row past the cutoff).
    for (const t of ts) expect(await countRows(a.ds, t)).toBe(t === first ? 3 : 2);
    expect(storeB.writes.sort()).toEqual([...ts].sort());
    for (const t of ts) await expect(a.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, anchorsChecked: 1 });
  });

  it('an anchor pass that lost its lock after reading a chain does not write its anchor: the other replica\'s retention anchor stands', async () => {
    const t = await prunableChain();
    const g = holdAfterChainRead();
    const outcome = a.moduleRef.get(ScheduledJobs).runNow(AUDIT_ANCHOR_JOB);
    await g.inside; // A read the (absent) previous anchor and the chain: head 4, nothing pruned
    await loseLock(LOCK_KEYS.auditAnchor);
    // B's retention takes the anchoring lock: checkpoint, its anchor (prunedThrough 3), then rows 1-3 go.
    expect(await b.moduleRef.get(ScheduledJobs).runNow(AUDIT_RETENTION_JOB)).toBe('success');
    expect(await countRows(a.ds, t)).toBe(2);
    g.release();
    expect(await outcome).toBe('failed');
    expectStoppedWithWarning(AUDIT_ANCHOR_JOB);
    expect(storeA.writes).toEqual([]);
    await expect(a.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, anchorsChecked: 1 });
  });

  it('an unlocked anchor pass never lowers the prunedThrough another replica\'s retention anchored meanwhile', async () => {
    const t = await prunableChain();
    const g = holdAfterChainRead();
    const pass = a.audit.anchorHeads(); // AuditService's: no lock, so retention does not wait for it
    await g.inside;
    expect(await b.moduleRef.get(ScheduledJobs).runNow(AUDIT_RETENTION_JOB)).toBe('success');
    g.release();
    await expect(pass).resolves.toMatchObject({ anchored: 1, failed: [] });
    expect(await a.moduleRef.get(AuditAnchorStore).read(t)).toMatchObject({ sequence: 4, prunedThrough: 3 });
    await expect(a.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, anchorsChecked: 1 });
  });

  it('retention whose checkpoint anchor was being written when it lost the anchoring lock deletes nothing and says so', async () => {
    const t = await prunableChain();
    // A's checkpoint (5) is committed, its anchor write (prunedThrough 3) under way.
    const retentionA = await runUntilWrite(a, storeA, AUDIT_RETENTION_JOB);
    await loseLock(LOCK_KEYS.auditAnchor);
    // B read the old (absent) anchor and the chain, its write (prunedThrough 0) under way.
    const anchorB = await runUntilWrite(b, storeB, AUDIT_ANCHOR_JOB);
    retentionA.release();
    const outcomeA = await retentionA.outcome; // A's anchor landed first
    anchorB.release();
    expect(await anchorB.outcome).toBe('success');
    expect(outcomeA).toBe('failed');
    expectStoppedWithWarning(AUDIT_RETENTION_JOB);
    expect(overwriteErrors(t)).toHaveLength(1);
    // B's anchor landed last, with prunedThrough 0: the rows are all there, as it says.
    expect(await countRows(a.ds, t)).toBe(5);
    await expect(a.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, anchorsChecked: 1 });
  });

  it('an anchor write under way when the lock is lost is logged as an error naming the tenant, and what verify then says', async () => {
    const t = await prunableChain();
    const anchorA = await runUntilWrite(a, storeA, AUDIT_ANCHOR_JOB); // head 4 with prunedThrough 0, at the store
    await loseLock(LOCK_KEYS.auditAnchor);
    const retentionB = await b.moduleRef.get(ScheduledJobs).runNow(AUDIT_RETENTION_JOB);
    anchorA.release();
    expect(await anchorA.outcome).toBe('failed');
    expect(retentionB).toBe('success');
    expect(overwriteErrors(t)).toEqual([expect.stringContaining(`'truncated' at sequence 1`)]);
    // The window no check can close without a compare-and-set store: A's write lands after B's checkpoint anchor.
    await expect(a.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: false, firstBad: { reason: 'truncated', sequence: 1, id: '' } });
  });
});
