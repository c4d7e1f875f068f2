import { ManualClock, ScheduledJobs, TransactionRunner } from '@app/common';
import { createTestDatabase, DATABASE_KINDS, TestDatabase } from '@app/testing';
import { SchedulerRegistry } from '@nestjs/schedule';
import {
  AUDIT_RETENTION_JOB,
  AUDIT_SUSPICIOUS_ACTIVITY_EVENT,
  AuditAction,
  AuditInvalidEventError,
  AuditQueryError,
  AuditQueryPage,
  AuditResult,
  AuditWriteError,
  GENESIS_HASH,
  SuspiciousActivityEvent,
} from '@app/audit';
import { AuditFixture, startAuditOn } from '../test/fixtures';
import { countRows, event, eventually, exec, startAudit, tenant } from '../test/harness';

const SECRET = 'sk_live_THIS-MUST-NEVER-REACH-AN-AUDIT-ROW';

describe.each(DATABASE_KINDS)('AuditService on %s', (kind) => {
  let h: AuditFixture;
  const clock = new ManualClock(new Date('2026-05-01T12:00:00Z'));

  beforeAll(async () => {
    h = await startAuditOn(kind, { suspicious: { failureThreshold: 3 } }, { clock });
    await exec(h.ds, 'CREATE TABLE demo_meta (id varchar(36) PRIMARY KEY, name varchar(64))');
  });
  afterAll(() => h?.close());

  it('records rows that chain per tenant, with every field stored', async () => {
    const t = tenant();
    const other = tenant();
    const a = await h.audit.record(event(t, { action: AuditAction.STORE, errorCode: undefined, durationMs: 12.4, details: { integration: 'github' } }));
    const b = await h.audit.record(event(t, { action: AuditAction.ROTATE, result: AuditResult.FAILURE, errorCode: 1003 }));
    const c = await h.audit.record(event(other));
    expect(a).toMatchObject({
      sequence: 1,
      tenantId: t,
      action: 'store',
      resource: 'cred-1',
      actorId: 'user-1',
      actorIp: '10.0.0.1',
      userAgent: 'jest',
      result: 'success',
      errorCode: null,
      durationMs: 12,
      correlationId: 'corr-1',
      details: { integration: 'github' },
      previousHash: GENESIS_HASH,
      occurredAt: clock.now(),
    });
    expect(b).toMatchObject({ sequence: 2, previousHash: a.hash, errorCode: '1003', result: 'failure' });
    expect(c).toMatchObject({ sequence: 1, previousHash: GENESIS_HASH });
    const { items } = await h.audit.query({ tenantId: t, order: 'asc' });
    expect(items).toEqual([a, b]); // chain order, and what was returned is what is stored
    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 2 });
  });

  it('stores text no database can hold (NUL, lone surrogates) as U+FFFD instead of failing the batch', async () => {
    const t = tenant();
    const odd = 'cred-\u0000-\ud800-end';
    await h.audit.record(event(t, { resource: odd, details: { note: 'x\u0000y', ['k\u0000']: 1 } }));
    await h.audit.recordRead(event(t, { resource: odd, context: { tenantId: t, actor: { id: 'u\u0000', userAgent: 'ua\udc00' } } }));
    await h.audit.flush(); // a batch the database refused would stay buffered and fail here
    const { items } = await h.audit.query({ tenantId: t, order: 'asc' });
    expect(items.map((i) => i.resource)).toEqual(['cred-\uFFFD-\uFFFD-end', 'cred-\uFFFD-\uFFFD-end']);
    expect(items[0].details).toEqual({ note: 'x\uFFFDy', 'k\uFFFD': 1 });
    expect(items[1]).toMatchObject({ actorId: 'u\uFFFD', userAgent: 'ua\uFFFD' });
    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 2 });
  });

  it('finds those rows by the text as it was given: a filter holding NUL or a lone surrogate is read as they were stored (it was a database error on PostgreSQL)', async () => {
    const t = tenant();
    const odd = 'cred-\u0000-\ud800-end';
    await h.audit.record(event(t, { resource: odd, context: { tenantId: t, actor: { id: 'u\u0000' }, correlationId: 'req-\u0000' } }));
    await h.audit.record(event(t, { resource: 'cred-plain' }));
    await h.audit.flush();
    for (const filter of [{ resource: odd }, { actorId: 'u\u0000' }, { correlationId: 'req-\u0000' }]) {
      expect((await h.audit.query({ tenantId: t, ...filter })).items.map((i) => i.resource)).toEqual(['cred-\uFFFD-\uFFFD-end']);
    }
  });

  it('writes in the caller transaction: a rollback leaves neither the change nor its audit row', async () => {
    const t = tenant();
    await expect(
      h.ds.transaction(async (m) => {
        await m.query(kind === 'postgres' ? 'INSERT INTO demo_meta VALUES ($1, $2)' : 'INSERT INTO demo_meta VALUES (?, ?)', [t, 'x']);
        await h.audit.record(event(t, { action: AuditAction.UPDATE_METADATA }), m);
        throw new Error('business rule failed after the audit row');
      }),
    ).rejects.toThrow('business rule failed');
    expect(await countRows(h.ds, t)).toBe(0);
    expect(await exec(h.ds, 'SELECT id FROM demo_meta WHERE id = ?', [t])).toEqual([]);

    // Committed: both are there, and the chain restarts cleanly after the rolled-back attempt.
    const row = await h.ds.transaction(async (m) => {
      await m.query(kind === 'postgres' ? 'INSERT INTO demo_meta VALUES ($1, $2)' : 'INSERT INTO demo_meta VALUES (?, ?)', [t, 'y']);
      return h.audit.record(event(t, { action: AuditAction.UPDATE_METADATA }), m);
    });
    expect(row.sequence).toBe(1);
    expect(await countRows(h.ds, t)).toBe(1);
    expect(await exec(h.ds, 'SELECT id FROM demo_meta WHERE id = ?', [t])).toHaveLength(1);
    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true });
  });

  it('joins the ambient TransactionRunner transaction without a manager: commits and rolls back with the caller', async () => {
    const t = tenant();
    // A runner the audit lib never saw (the harness has no PersistenceModule): the context is per DataSource.
    const runner = new TransactionRunner(h.ds);
    const insert = (id: string) => runner.manager.query(kind === 'postgres' ? 'INSERT INTO demo_meta VALUES ($1, $2)' : 'INSERT INTO demo_meta VALUES (?, ?)', [id, 'r']);
    await expect(
      runner.run(async () => {
        await insert(`${t}-a`);
        await h.audit.record(event(t, { action: AuditAction.UPDATE_METADATA }));
        throw new Error('business rule failed after the audit row');
      }),
    ).rejects.toThrow('business rule failed');
    expect(await countRows(h.ds, t)).toBe(0);
    const row = await runner.run(async () => {
      await insert(`${t}-b`);
      return h.audit.record(event(t, { action: AuditAction.UPDATE_METADATA }));
    });
    expect(row.sequence).toBe(1);
    expect(await countRows(h.ds, t)).toBe(1);
    expect(await exec(h.ds, 'SELECT id FROM demo_meta WHERE id IN (?, ?)', [`${t}-a`, `${t}-b`])).toEqual([{ id: `${t}-b` }]);
    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 1 });
  });

  it('fails closed: when the audit row cannot be written, record() throws and the caller change rolls back', async () => {
    const t = tenant();
    const before = h.audit.stats.writeFailures;
    await exec(h.ds, 'ALTER TABLE cv_audit_log RENAME TO cv_audit_log_off');
    try {
      await expect(h.audit.record(event(t))).rejects.toBeInstanceOf(AuditWriteError);
      await expect(
        h.ds.transaction(async (m) => {
          await m.query(kind === 'postgres' ? 'INSERT INTO demo_meta VALUES ($1, $2)' : 'INSERT INTO demo_meta VALUES (?, ?)', [t, 'z']);
          await h.audit.record(event(t, { action: AuditAction.DELETE }), m);
        }),
      ).rejects.toMatchObject({ code: 5002, codeName: 'AUDIT_WRITE_FAILED' });
    } finally {
      await exec(h.ds, 'ALTER TABLE cv_audit_log_off RENAME TO cv_audit_log');
    }
    expect(await exec(h.ds, 'SELECT id FROM demo_meta WHERE id = ?', [t])).toEqual([]);
    expect(h.audit.stats.writeFailures).toBe(before + 2);
    await expect(h.audit.record(event(t))).resolves.toMatchObject({ sequence: 1 });
  });

  it('never stores a credential-looking member of details, by record() or recordRead()', async () => {
    const t = tenant();
    const details = {
      integration: 'stripe',
      value: SECRET,
      clientSecret: SECRET,
      nested: { refresh_token: SECRET, accessToken: SECRET, password: SECRET, privateKey: SECRET, ok: 1 },
      header: `Bearer ${SECRET}`,
    };
    const row = await h.audit.record(event(t, { action: AuditAction.STORE, details }));
    await h.audit.recordRead(event(t, { details }));
    await h.audit.flush();
    const raw = await exec<Array<{ details: string }>>(h.ds, 'SELECT details FROM cv_audit_log WHERE tenant_id = ?', [t]);
    expect(raw).toHaveLength(2);
    for (const r of raw) {
      expect(r.details).not.toContain(SECRET);
      expect(JSON.parse(r.details)).toMatchObject({ integration: 'stripe', nested: { ok: 1 } });
    }
    expect(row.details?._redacted).toEqual(expect.arrayContaining(['value', 'clientSecret', 'nested.refresh_token', 'header']));
    expect(h.audit.stats.redactedKeys).toBeGreaterThanOrEqual(14);
  });

  it('rejects malformed events with a typed error and writes nothing', async () => {
    const t = tenant();
    const bad = [
      event(t, { action: 'Not An Action' }),
      event('', {}),
      event(t, { resource: '' }),
      event(t, { result: 'maybe' as AuditResult }),
      event(t, { durationMs: -1 }),
      { ...event(t), context: { tenantId: t, actor: { id: '' } } },
    ];
    for (const e of bad) {
      await expect(h.audit.record(e)).rejects.toBeInstanceOf(AuditInvalidEventError);
      await expect(h.audit.recordRead(e)).rejects.toBeInstanceOf(AuditInvalidEventError);
    }
    await h.audit.flush();
    expect(await countRows(h.ds, t)).toBe(0);
  });

  it('accepts actions beyond the enum (extendable)', async () => {
    const t = tenant();
    await expect(h.audit.record(event(t, { action: 'webhook.verify_failed' }))).resolves.toMatchObject({ action: 'webhook.verify_failed' });
  });

  // Type-level too (tsc): a plain 'denied' compiles, an unknown string does not (and is refused at run time).
  it("takes a result as its string value ('denied') in an event and a query, answers with the enum, refuses an unknown one", async () => {
    const t = tenant();
    const row = await h.audit.record(event(t, { result: 'denied' }));
    const result: AuditResult = row.result;
    expect(result).toBe(AuditResult.DENIED);
    expect((await h.audit.query({ tenantId: t, result: ['denied', AuditResult.FAILURE] })).items.map((r) => r.id)).toEqual([row.id]);
    // @ts-expect-error not a result
    await expect(h.audit.record(event(t, { result: 'maybe' }))).rejects.toBeInstanceOf(AuditInvalidEventError);
  });

  describe('query', () => {
    const t1 = tenant('q1');
    const t2 = tenant('q2');
    const start = new Date('2026-06-01T00:00:00Z');

    beforeAll(async () => {
      clock.set(start);
      for (let i = 0; i < 30; i++) {
        await h.audit.record(
          event(i % 3 === 0 ? t2 : t1, {
            action: [AuditAction.READ, AuditAction.STORE, AuditAction.ROTATE][i % 3 === 0 ? 0 : i % 2 ? 1 : 2],
            resource: `cred-${i % 4}`,
            result: i % 5 === 0 ? AuditResult.DENIED : AuditResult.SUCCESS,
            context: { tenantId: i % 3 === 0 ? t2 : t1, actor: { id: `actor-${i % 2}` } },
          }),
        );
        if (i % 4 !== 3) clock.advance(1000); // some rows share a timestamp: paging must still be exact
      }
    });

    it('filters by tenant, resource, actor, action(s), result and time range', async () => {
      const all = (await h.audit.query({ tenantId: t1, limit: 500 })).items;
      expect(all).toHaveLength(20);
      expect(all.every((r) => r.tenantId === t1)).toBe(true);
      const sorted = [...all].sort((a, b) => b.occurredAt.getTime() - a.occurredAt.getTime() || (a.id < b.id ? 1 : -1));
      expect(all.map((r) => r.occurredAt.getTime())).toEqual(sorted.map((r) => r.occurredAt.getTime()));

      const byResource = (await h.audit.query({ tenantId: t1, resource: 'cred-1' })).items;
      expect(byResource.length).toBe(all.filter((r) => r.resource === 'cred-1').length);
      expect(byResource.length).toBeGreaterThan(0);

      const byActor = (await h.audit.query({ tenantId: t1, actorId: 'actor-1', action: [AuditAction.STORE, AuditAction.ROTATE] })).items;
      expect(byActor.map((r) => r.id).sort()).toEqual(
        all.filter((r) => r.actorId === 'actor-1' && ['store', 'rotate'].includes(r.action)).map((r) => r.id).sort(),
      );

      const denied = (await h.audit.query({ result: AuditResult.DENIED, tenantId: t2 })).items;
      expect(denied.length).toBeGreaterThan(0);
      expect(denied.every((r) => r.result === 'denied' && r.tenantId === t2)).toBe(true);

      const from = new Date(start.getTime() + 5000);
      const to = new Date(start.getTime() + 12_000);
      const window = (await h.audit.query({ tenantId: t1, from, to })).items;
      expect(window.length).toBe(all.filter((r) => r.occurredAt >= from && r.occurredAt < to).length);
      expect(window.length).toBeGreaterThan(0);
    });

    it('pages a time range of one tenant by (occurredAt, id), unless a filter index narrows it: then in chain order', async () => {
      const t = tenant();
      const base = Date.UTC(2026, 3, 1);
      // A later link may carry an earlier instant (the event's own time, e.g. another replica's clock).
      const offsets = [0, 3000, 1000, 4000, 2000, 2000, 5000];
      for (const ms of offsets) {
        clock.set(new Date(base + ms));
        await h.audit.record({ action: AuditAction.READ, context: { tenantId: t, actor: { id: 'actor-1' } }, resource: 'cred-1', result: AuditResult.SUCCESS });
      }
      const from = new Date(base + 1000);
      const to = new Date(base + 5000);
      for (const order of ['desc', 'asc'] as const) {
        const pages: AuditQueryPage[] = [];
        let cursor: string | undefined;
        do {
          pages.push(await h.audit.query({ tenantId: t, from, to, order, limit: 2, cursor }));
          cursor = pages[pages.length - 1].nextCursor;
        } while (cursor);
        const got = pages.flatMap((p) => p.items);
        const inWindow = (await h.audit.query({ tenantId: t, limit: 500 })).items.filter((r) => r.occurredAt >= from && r.occurredAt < to);
        const byTime = inWindow.sort((a, b) => a.occurredAt.getTime() - b.occurredAt.getTime() || (a.id < b.id ? -1 : 1));
        expect(got.map((r) => r.id)).toEqual((order === 'asc' ? byTime : byTime.reverse()).map((r) => r.id));
        expect(got.map((r) => r.occurredAt.getTime() - base)).toEqual(order === 'asc' ? [1000, 2000, 2000, 3000, 4000] : [4000, 3000, 2000, 2000, 1000]);
        // The cursor of a time-ordered page is refused by the chain-ordered query of the same tenant, and back.
        await expect(h.audit.query({ tenantId: t, order, cursor: pages[0].nextCursor })).rejects.toMatchObject({ code: 5004 });
      }
      // With the resource filter (its index is in chain order) the same window comes in chain order.
      const narrowed = (await h.audit.query({ tenantId: t, resource: 'cred-1', from, to, order: 'asc' })).items;
      expect(narrowed.map((r) => r.sequence)).toEqual([...narrowed.map((r) => r.sequence)].sort((a, b) => a - b));
      expect(narrowed.map((r) => r.occurredAt.getTime() - base)).toEqual([3000, 1000, 4000, 2000, 2000]);
      const chainCursor = (await h.audit.query({ tenantId: t, limit: 1 })).nextCursor;
      await expect(h.audit.query({ tenantId: t, from, cursor: chainCursor })).rejects.toMatchObject({ code: 5004 });
    });

    it('pages with an opaque cursor without gaps or duplicates, in both orders', async () => {
      for (const order of ['desc', 'asc'] as const) {
        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await h.audit.query({ tenantId: t1, limit: 7, cursor, order });
          seen.push(...page.items.map((r) => r.id));
          cursor = page.nextCursor;
          pages++;
        } while (cursor);
        const expected = (await h.audit.query({ tenantId: t1, limit: 500, order })).items.map((r) => r.id);
        expect(pages).toBe(3);
        expect(seen).toEqual(expected);
      }
    });

    it('refuses a limit above 500, a foreign cursor and a tampered cursor', async () => {
      await expect(h.audit.query({ limit: 501 })).rejects.toBeInstanceOf(AuditQueryError);
      await expect(h.audit.query({ limit: 0 })).rejects.toBeInstanceOf(AuditQueryError);
      const { nextCursor } = await h.audit.query({ tenantId: t1, limit: 2 });
      await expect(h.audit.query({ tenantId: t1, cursor: nextCursor, order: 'asc' })).rejects.toBeInstanceOf(AuditQueryError);
      await expect(h.audit.query({ cursor: 'not-a-cursor' })).rejects.toMatchObject({ code: 5004 });
    });

    it('refuses an action or result no row can hold (a NUL, an unknown result), naming the field: not a database error, not an empty page', async () => {
      const bad: Array<[Record<string, unknown>, string]> = [
        [{ action: 'read\u0000' }, 'action'], // PostgreSQL cannot compare a NUL
        [{ action: ['read', 'Rotate'] }, 'action'],
        [{ result: 'maybe' }, 'result'],
        [{ result: [AuditResult.DENIED, 'DENIED'] }, 'result'],
      ];
      for (const [filter, field] of bad) {
        for (const scope of [{ tenantId: t1 }, {}]) {
          const error = await h.audit.query({ ...scope, ...filter }).catch((e: unknown) => e);
          expect(error).toBeInstanceOf(AuditQueryError);
          expect(error).toMatchObject({ code: 5004, message: expect.stringMatching(new RegExp(`^${field} `)) });
        }
      }
      const denied = await h.audit.query({ tenantId: t1, action: ['read', 'store', 'rotate'], result: ['denied'] });
      expect(denied.items.length).toBeGreaterThan(0);
      expect(denied.items.every((r) => r.result === AuditResult.DENIED)).toBe(true);
    });

  });

  it('detects repeated failures by one actor: emits one event and writes one suspicious_activity row per window', async () => {
    const t = tenant();
    const seen: SuspiciousActivityEvent[] = [];
    const listener = (e: SuspiciousActivityEvent) => seen.push(e);
    h.events.on(AUDIT_SUSPICIOUS_ACTIVITY_EVENT, listener);
    try {
      for (let i = 0; i < 6; i++) {
        await h.audit.record(
          event(t, {
            action: AuditAction.ACCESS_DENIED,
            result: AuditResult.DENIED,
            resource: `cred-${i}`,
            context: { tenantId: t, actor: { id: 'mallory' }, correlationId: `c${i}` },
          }),
        );
      }
      const rows = await eventually(
        () => h.audit.query({ tenantId: t, action: AuditAction.SUSPICIOUS_ACTIVITY }),
        (p) => p.items.length >= 1,
      );
      expect(seen).toEqual([expect.objectContaining({ kind: 'failures_by_actor', tenantId: t, actorId: 'mallory', count: 3, threshold: 3 })]);
      expect(rows.items).toHaveLength(1);
      expect(rows.items[0]).toMatchObject({ resource: 'actor:mallory', details: expect.objectContaining({ kind: 'failures_by_actor', count: 3 }) });
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 7 });
    } finally {
      h.events.off(AUDIT_SUSPICIOUS_ACTIVITY_EVENT, listener);
    }
  });
});

describe.each(DATABASE_KINDS)('AuditModule registration on %s', (kind) => {
  let db: TestDatabase;
  beforeAll(async () => (db = await createTestDatabase(kind)));
  afterAll(async () => db?.drop());

  it('forRootAsync works like forRoot, and registers the named retention cron job when enabled', async () => {
    const h = await startAudit(db, { retention: { enabled: true, cron: '0 4 * * *' } }, { async: true, schedule: true });
    try {
      const registry = h.moduleRef.get(SchedulerRegistry);
      expect(registry.doesExist('cron', AUDIT_RETENTION_JOB)).toBe(true);
      expect(registry.getCronJob(AUDIT_RETENTION_JOB).cronTime.source).toBe('0 4 * * *');
      const t = tenant();
      await h.audit.record(event(t));
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 1 });
      // The job runs through ScheduledJobs: a run by hand is recorded like a cron tick.
      const jobs = h.moduleRef.get(ScheduledJobs);
      await expect(jobs.runNow(AUDIT_RETENTION_JOB)).resolves.toBe('success');
      expect(jobs.status()).toEqual([
        expect.objectContaining({ name: 'audit-retention', lockKey: 'audit-retention', timeZone: 'UTC', intervalMs: 86_400_000, lastOutcome: 'success', degraded: false }),
      ]);
    } finally {
      await h.close();
    }
  });

  it('does not register the job when retention is disabled, and refuses invalid options at startup', async () => {
    const h = await startAudit(db, { retention: { enabled: false } }, { schedule: true });
    try {
      expect(h.moduleRef.get(SchedulerRegistry).doesExist('cron', AUDIT_RETENTION_JOB)).toBe(false);
      expect(h.moduleRef.get(ScheduledJobs).status()).toEqual([]);
    } finally {
      await h.close();
    }
    await expect(startAudit(db, { readBuffer: { maxSize: 5, batchSize: 10 } })).rejects.toMatchObject({ codeName: 'AUDIT_CONFIGURATION' });
    await expect(startAudit(db, { retention: { enabled: true } }, { schedule: false })).rejects.toMatchObject({
      codeName: 'SCHEDULED_JOB_CONFIGURATION',
      message: expect.stringMatching(/ScheduleModule\.forRoot.*AuditModule option retention\.enabled = false/),
    });
  });
});

describe('AuditModule on a PostgreSQL schema that is not on the search_path', () => {
  let db: TestDatabase;
  beforeAll(async () => (db = await createTestDatabase('postgres')));
  afterAll(async () => db?.drop());

  it('writes, reads and verifies rows in the configured schema (no row lands in another schema)', async () => {
    // Only `schema` names the place: TypeORM qualifies its own SQL, and the audit log's inserts must too.
    const h = await startAudit({ ...db, options: { ...db.options, extra: { max: 2 } } as TestDatabase['options'] });
    try {
      const t = tenant();
      await h.audit.record(event(t));
      await h.audit.recordRead(event(t, { action: AuditAction.READ }));
      await h.audit.flush();
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 2 });
      const schema = (db.options as { schema: string }).schema;
      const [{ n }] = (await h.ds.query(`SELECT count(*)::int AS n FROM "${schema}".cv_audit_log WHERE tenant_id = $1`, [t])) as Array<{ n: number }>;
      expect(n).toBe(2);
    } finally {
      await h.close();
    }
  });
});
