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
  async recordRead(e: AuditEventInput): Promise<void> {
    if (!this.healthy) throw new Error('audit unavailable');
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
  it('folds identical successful reads into one event with a count and time range', async () => {
    const { coalescer, audit, clock } = await build(1000);
    await coalescer.record(read('c1'));
    clock.advance(10);
    await coalescer.record(read('c1'));
    await coalescer.record(read('c1'));
    await coalescer.record(read('c2'));
    await coalescer.record(read('c1', 'u2'));
    await coalescer.record(read('c1', 'u1', AuditResult.SUCCESS, 'other-request'));
    expect(audit.reads).toHaveLength(0);
    await coalescer.flush();
    expect(audit.reads.map((r) => [r.resource, r.context.actor.id, r.details?.reads])).toEqual([
      ['c1', 'u1', 3],
      ['c2', 'u1', 1],
      ['c1', 'u2', 1],
      ['c1', 'u1', 1],
    ]);
    expect(audit.reads[0].details).toMatchObject({ version: 1, firstReadAt: '2030-01-01T00:00:00.000Z', lastReadAt: '2030-01-01T00:00:00.010Z' });
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

  it('with a 0 window records every read', async () => {
    const { coalescer, audit } = await build(0);
    await coalescer.record(read('c1'));
    await coalescer.record(read('c1'));
    expect(audit.reads).toHaveLength(2);
  });

  it('hands events over early when too many distinct ones are pending, and on module destroy', async () => {
    const { coalescer, audit } = await build(60_000, 2);
    await coalescer.record(read('a'));
    await coalescer.record(read('b'));
    expect(audit.reads).toHaveLength(2);
    await coalescer.record(read('c'));
    expect(coalescer.pendingEvents).toBe(1);
    await coalescer.onModuleDestroy();
    expect(audit.reads.map((r) => r.resource)).toEqual(['a', 'b', 'c']);
  });
});
