import { ManualClock } from '@app/common';
import { AuditResult } from '../interfaces/audit-event.interface';
import { ObservedEvent, SuspiciousActivityDetector } from './suspicious-activity.detector';

const MIN = 60_000;

function setup(over: Partial<ConstructorParameters<typeof SuspiciousActivityDetector>[0]> = {}) {
  const clock = new ManualClock(new Date('2026-03-01T00:00:00Z'));
  const detector = new SuspiciousActivityDetector(
    { failureThreshold: 5, windowMs: 10 * MIN, distinctReadsThreshold: 3, distinctReadsWindowMs: 10 * MIN, ...over },
    clock,
  );
  return { clock, detector };
}

const fail = (over: Partial<ObservedEvent> = {}): ObservedEvent => ({
  action: 'read',
  tenantId: 't1',
  actorId: 'mallory',
  resource: 'cred-1',
  result: AuditResult.DENIED,
  ...over,
});

describe('SuspiciousActivityDetector', () => {
  it('alerts on the Nth failure of one actor within the window, once per window', () => {
    const { clock, detector } = setup();
    const kinds: string[][] = [];
    for (let i = 0; i < 8; i++) {
      kinds.push(detector.observe(fail({ resource: `cred-${i}` })).map((a) => a.kind));
      clock.advance(1000);
    }
    expect(kinds.slice(0, 4).flat()).toEqual([]);
    expect(kinds[4]).toEqual(['failures_by_actor']);
    expect(kinds.slice(5).flat()).toEqual([]); // suppressed for the rest of the window
  });

  it('alerts again after the window if failures continue', () => {
    const { clock, detector } = setup();
    for (let i = 0; i < 5; i++) detector.observe(fail({ resource: `r${i}` }));
    clock.advance(10 * MIN);
    const again: string[] = [];
    for (let i = 0; i < 5; i++) again.push(...detector.observe(fail({ resource: `s${i}` })).map((a) => a.kind));
    expect(again).toEqual(['failures_by_actor']);
  });

  it('does not alert when the failures are spread wider than the window', () => {
    const { clock, detector } = setup();
    const alerts = [];
    for (let i = 0; i < 20; i++) {
      alerts.push(...detector.observe(fail({ resource: `r${i}` })));
      clock.advance(2.5 * MIN); // at most 4 within any 10 minutes
    }
    expect(alerts).toEqual([]);
  });

  it('alerts on failures against one resource from many actors', () => {
    const { detector } = setup();
    const alerts = [];
    for (let i = 0; i < 5; i++) alerts.push(...detector.observe(fail({ actorId: `a${i}`, result: AuditResult.FAILURE })));
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ kind: 'failures_by_resource', resource: 'cred-1', count: 5, threshold: 5, tenantId: 't1' });
  });

  it('ignores successes for failure counting and keeps tenants apart', () => {
    const { detector } = setup();
    const alerts = [];
    for (let i = 0; i < 4; i++) alerts.push(...detector.observe(fail({ tenantId: 'A', resource: `r${i}` })));
    for (let i = 0; i < 4; i++) alerts.push(...detector.observe(fail({ tenantId: 'B', resource: `r${i}` })));
    for (let i = 0; i < 10; i++) alerts.push(...detector.observe(fail({ tenantId: 'A', result: AuditResult.SUCCESS, action: 'store' })));
    expect(alerts).toEqual([]);
  });

  it('alerts when one actor reads more than the threshold of DISTINCT credentials in the window', () => {
    const { clock, detector } = setup();
    const read = (resource: string) => detector.observe(fail({ resource, result: AuditResult.SUCCESS }));
    // Re-reading the same credentials never counts twice.
    for (let i = 0; i < 10; i++) expect(read(`c${i % 3}`)).toEqual([]);
    const alerts = read('c3');
    expect(alerts).toEqual([expect.objectContaining({ kind: 'distinct_reads_by_actor', actorId: 'mallory', count: 4, threshold: 3 })]);
    expect(read('c4')).toEqual([]); // once per window
    clock.advance(11 * MIN);
    expect(read('d0')).toEqual([]); // old reads have left the window
  });
});
