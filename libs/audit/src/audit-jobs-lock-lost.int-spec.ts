import { Logger } from '@nestjs/common';
import { DistributedLock, LOCK_KEYS, ManualClock, PostgresAdvisoryLock, ScheduledJobs } from '@app/common';
import { CapturingLogger, createTestDatabase, endLockSession, type TestDatabase } from '@app/testing';
import { AUDIT_ANCHOR_JOB, AUDIT_RETENTION_JOB, AuditAction, AuditAnchor, AuditAnchorStore } from '@app/audit';
import { AuditHarness, countRows, event, startAudit, tenant } from '../test/harness';

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

  /** Ends A's session of `key` while A's job is held inside its first chain; B can take the lock then. */
  async function loseLockInFirstChain(job: string, key: string): Promise<{ outcome: Promise<string> }> {
    const g = gate();
    storeA.hold = g.hold;
    const outcome = a.moduleRef.get(ScheduledJobs).runNow(job);
    await g.inside;
    const lockA = a.moduleRef.get(DistributedLock) as PostgresAdvisoryLock;
    await endLockSession(b.ds, lockA.advisoryId(key));
    await expect(b.moduleRef.get(DistributedLock).tryRun(key, async () => 'b')).resolves.toEqual({ acquired: true, value: 'b' });
    for (let i = 0; i < 250 && !logger.lines.some((l) => l.includes('was lost while held')); i++) await sleep(20);
    g.release();
    return { outcome };
  }

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
  ])('retention losing %s stops before its next chain, leaving the chain it pruned checkpointed; the other replica prunes the rest', async (_lost, key) => {
    const ts = [tenant(), tenant(), tenant()];
    for (const t of ts) await writeRows(t, 3);
    clock.advance(100 * 86_400_000);
    for (const t of ts) await writeRows(t, 1);

    const { outcome } = await loseLockInFirstChain(AUDIT_RETENTION_JOB, key);
    expect(await outcome).toBe('failed');
    expectStoppedWithWarning(AUDIT_RETENTION_JOB);
    // The chain in flight was pruned (3 rows gone, a checkpoint appended), the others not touched.
    const [first] = storeA.writes;
    expect(storeA.writes).toHaveLength(1);
    for (const t of ts) expect(await countRows(a.ds, t)).toBe(t === first ? 2 : 4);
    for (const t of ts) await expect(a.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true });

    expect(await b.moduleRef.get(ScheduledJobs).runNow(AUDIT_RETENTION_JOB)).toBe('success');
    for (const t of ts) expect(await countRows(a.ds, t)).toBe(2);
    expect(storeB.writes.sort()).toEqual(ts.filter((t) => t !== first).sort());
    for (const t of ts) await expect(a.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, anchorsChecked: 1 });
  });
});
