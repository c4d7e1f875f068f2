import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AuditEventInput, AuditResult, AuditService } from '@app/audit';
import { ManualClock } from '@app/common';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import { resolveCredentialsOptions } from '../credentials.options';
import { ReadAuditCoalescer } from './read-audit-coalescer';

/** Records what reaches the audit log; can be made unhealthy. */
class FakeAudit {
  reads: AuditEventInput[] = [];
  healthy = true;
  /** Refuses writes with this error while still reporting healthy (a write failing mid-window). */
  refuseWith?: Error;
  async recordRead(e: AuditEventInput): Promise<void> {
    if (!this.healthy) throw new Error('audit unavailable');
    if (this.refuseWith) throw this.refuseWith;
    this.reads.push(e);
  }
}

async function build(coalesceWindowMs: number, maxPendingKeys = 100) {
  const audit = new FakeAudit();
  const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
  const mod = await Test.createTestingModule({
    providers: [
      ReadAuditCoalescer,
      { provide: AuditService, useValue: audit },
      { provide: CREDENTIALS_CLOCK, useValue: clock },
      { provide: CREDENTIALS_RESOLVED_OPTIONS, useValue: resolveCredentialsOptions({ readAudit: { coalesceWindowMs, maxPendingKeys } }) },
    ],
  }).compile();
  return { coalescer: mod.get(ReadAuditCoalescer), audit, clock };
}

const read = (resource: string, actor = 'u1', result = AuditResult.SUCCESS, correlationId?: string): AuditEventInput => ({
  action: 'read',
  context: { tenantId: 't', actor: { id: actor }, correlationId },
  resource,
  result,
  details: { version: 1 },
});

describe('ReadAuditCoalescer', () => {
  it('hands the first read of a key over at once and folds its repeats within the window into one event', async () => {
    const { coalescer, audit, clock } = await build(1000);
    await coalescer.record(read('c1'));
    clock.advance(10);
    await coalescer.record(read('c1'));
    clock.advance(5);
    await coalescer.record(read('c1'));
    await coalescer.record(read('c2'));
    await coalescer.record(read('c1', 'u2'));
    await coalescer.record(read('c1', 'u1', AuditResult.SUCCESS, 'other-request'));
    // Every distinct read is recorded immediately, as an ordinary read event.
    expect(audit.reads.map((r) => [r.resource, r.context.actor.id, r.context.correlationId, r.details?.reads])).toEqual([
      ['c1', 'u1', undefined, undefined],
      ['c2', 'u1', undefined, undefined],
      ['c1', 'u2', undefined, undefined],
      ['c1', 'u1', 'other-request', undefined],
    ]);
    await coalescer.flush();
    // The two repeats of c1 by u1 become one more event: nothing is lost, nothing is counted twice.
    expect(audit.reads).toHaveLength(5);
    expect(audit.reads[4]).toMatchObject({ resource: 'c1', context: { actor: { id: 'u1' } } });
    expect(audit.reads[4].details).toEqual({
      version: 1,
      reads: 2,
      firstReadAt: '2030-01-01T00:00:00.010Z',
      lastReadAt: '2030-01-01T00:00:00.015Z',
    });
    // A new window starts: the next read is handed over at once again.
    await coalescer.record(read('c1'));
    expect(audit.reads).toHaveLength(6);
    await coalescer.flush();
    expect(audit.reads).toHaveLength(6);
  });

  it('folds a different version of the same credential separately', async () => {
    const { coalescer, audit } = await build(1000);
    await coalescer.record(read('c1'));
    await coalescer.record({ ...read('c1'), details: { version: 2 } });
    await coalescer.record({ ...read('c1'), details: { version: 2 } });
    await coalescer.flush();
    expect(audit.reads.map((r) => [r.details?.version, r.details?.reads])).toEqual([
      [1, undefined],
      [2, undefined],
      [2, 1],
    ]);
  });

  it('never folds failed or denied reads', async () => {
    const { coalescer, audit } = await build(1000);
    await coalescer.record(read('c1', 'u1', AuditResult.DENIED));
    await coalescer.record(read('c1', 'u1', AuditResult.DENIED));
    expect(audit.reads).toHaveLength(2);
  });

  it('passes reads straight through (and lets them fail) while the audit log is unhealthy', async () => {
    const { coalescer, audit } = await build(1000);
    audit.healthy = false;
    await expect(coalescer.record(read('c1'))).rejects.toThrow('audit unavailable');
  });

  it('a folded repeat resolves only once the first row of its key has committed, and is refused if that row failed', async () => {
    const { coalescer, audit } = await build(1000);
    const commits: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
    audit.recordRead = (e: AuditEventInput) => {
      audit.reads.push(e);
      return new Promise<void>((resolve, reject) => commits.push({ resolve, reject }));
    };
    let repeatDone = false;
    const first = coalescer.record(read('c1'));
    const repeat = coalescer.record(read('c1')).then(() => (repeatDone = true));
    await new Promise((r) => setImmediate(r));
    expect(repeatDone).toBe(false); // the key has no durable row yet: the value must not be served
    commits[0].resolve();
    await first;
    await repeat;
    expect(repeatDone).toBe(true);

    const other = coalescer.record(read('c2'));
    const otherRepeat = coalescer.record(read('c2'));
    commits[1].reject(new Error('batch failed'));
    await expect(other).rejects.toThrow('batch failed');
    await expect(otherRepeat).rejects.toThrow('batch failed');
  });

  it('with a 0 window records every read', async () => {
    const { coalescer, audit } = await build(0);
    await coalescer.record(read('c1'));
    await coalescer.record(read('c1'));
    expect(audit.reads).toHaveLength(2);
  });

  it('starts a new window early when too many distinct keys are pending, and flushes repeats on module destroy', async () => {
    const { coalescer, audit } = await build(60_000, 2);
    await coalescer.record(read('a'));
    await coalescer.record(read('a'));
    await coalescer.record(read('b')); // second key: the window closes, a's repeat is handed over
    await new Promise((r) => setImmediate(r));
    expect(audit.reads.map((r) => [r.resource, r.details?.reads])).toEqual([
      ['a', undefined],
      ['a', 1],
      ['b', undefined],
    ]);
    expect(coalescer.pendingEvents).toBe(0);
    await coalescer.record(read('c'));
    await coalescer.record(read('c'));
    expect(coalescer.pendingEvents).toBe(1);
    await coalescer.onModuleDestroy();
    expect(audit.reads.map((r) => [r.resource, r.details?.reads])).toEqual([
      ['a', undefined],
      ['a', 1],
      ['b', undefined],
      ['c', undefined],
      ['c', 1],
    ]);
  });

  it('logs a folded repeat the audit log refused by error class and code, never by its message', async () => {
    const { coalescer, audit } = await build(1000);
    const logged = jest.spyOn((coalescer as unknown as { logger: Logger }).logger, 'error').mockImplementation(() => undefined);
    await coalescer.record(read('c1'));
    await coalescer.record(read('c1'));
    audit.refuseWith = Object.assign(new Error('duplicate key value (tenant)=(MARKER-7d1e)'), { code: '23505' });
    await coalescer.flush();
    expect(logged).toHaveBeenCalledTimes(1);
    const line = String(logged.mock.calls[0][0]);
    expect(line).toContain('Error(23505)');
    expect(line).not.toContain('MARKER-7d1e');
  });
});
