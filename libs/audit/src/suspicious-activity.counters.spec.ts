import { ManualClock } from '@app/common';
import { AuditResult } from './interfaces/audit-event.interface';
import { ObservedEvent, SharedSuspiciousActivityDetector } from './internal/suspicious-activity.detector';
import { InProcessSuspiciousActivityCounters, SuspiciousActivityCounters } from './suspicious-activity.counters';

const MIN = 60_000;
const thresholds = { failureThreshold: 3, windowMs: 10 * MIN, distinctReadsThreshold: 2, distinctReadsWindowMs: 10 * MIN };
const denied = (resource: string, actorId = 'mallory'): ObservedEvent => ({ action: 'read', tenantId: 't1', actorId, resource, result: AuditResult.DENIED });

/** Detection over counters shared by several detectors — what two replicas on one Redis amount to. */
describe('SharedSuspiciousActivityDetector', () => {
  it('counts what every replica saw against one threshold and raises each alert on one replica only, once per window', async () => {
    const clock = new ManualClock(new Date('2026-03-01T00:00:00Z'));
    const counters = new InProcessSuspiciousActivityCounters();
    const replicas = [new SharedSuspiciousActivityDetector(thresholds, clock, counters), new SharedSuspiciousActivityDetector(thresholds, clock, counters)];
    const kinds: string[][] = [];
    for (let i = 0; i < 6; i++) kinds.push((await replicas[i % 2].observe(denied(`cred-${i}`))).map((a) => a.kind));
    expect(kinds).toEqual([[], [], ['failures_by_actor'], [], [], []]);
    clock.advance(10 * MIN);
    const again = [];
    for (let i = 0; i < 3; i++) again.push(...(await replicas[(i + 1) % 2].observe(denied(`x-${i}`))));
    expect(again).toEqual([expect.objectContaining({ kind: 'failures_by_actor', count: 3, threshold: 3 })]);
  });

  it('counts distinct reads across replicas (a re-read counts once) and reports the configured threshold', async () => {
    const clock = new ManualClock(new Date('2026-03-01T00:00:00Z'));
    const counters = new InProcessSuspiciousActivityCounters();
    const [r1, r2] = [new SharedSuspiciousActivityDetector(thresholds, clock, counters), new SharedSuspiciousActivityDetector(thresholds, clock, counters)];
    const read = (d: SharedSuspiciousActivityDetector, resource: string) => d.observe({ ...denied(resource), result: AuditResult.SUCCESS });
    expect(await read(r1, 'c1')).toEqual([]);
    expect(await read(r2, 'c1')).toEqual([]);
    expect(await read(r2, 'c2')).toEqual([]);
    expect(await read(r1, 'c3')).toEqual([expect.objectContaining({ kind: 'distinct_reads_by_actor', count: 3, threshold: 2 })]);
  });

  it('passes what the counters answer through: no alert unless the counters grant it', async () => {
    class NeverAlerting extends SuspiciousActivityCounters {
      hit(_now: number, hits: readonly unknown[]) {
        return Promise.resolve(hits.map(() => ({ count: 99, alert: false })));
      }
    }
    const d = new SharedSuspiciousActivityDetector(thresholds, new ManualClock(new Date()), new NeverAlerting());
    expect(await d.observe(denied('c1'))).toEqual([]);
  });
});

describe('InProcessSuspiciousActivityCounters', () => {
  it('hold at most alertAt members per window, alert once at the threshold, and again once the window has slid past', () => {
    const counters = new InProcessSuspiciousActivityCounters();
    const hit = (now: number, member: string) => counters.hitNow(now, [{ key: 'distinct_reads:t1:a', member, windowMs: 10 * MIN, alertAt: 101 }])[0];
    const results = Array.from({ length: 10_000 }, (_, i) => hit(i, `cred-${i}`));
    expect(results.map((r) => r.count)).toEqual(Array.from({ length: 10_000 }, (_, i) => Math.min(i + 1, 101)));
    expect(results.flatMap((r, i) => (r.alert ? [i] : []))).toEqual([100]);
    expect(counters.trackedMembers).toBe(101);
    // Past the window (and its quiet period), the next 101 distinct reads alert once more.
    const later = Array.from({ length: 101 }, (_, i) => hit(10_000 + 10 * MIN + i, `late-${i}`));
    expect(later.map((r) => r.count)).toEqual(Array.from({ length: 101 }, (_, i) => i + 1));
    expect(later.flatMap((r, i) => (r.alert ? [i] : []))).toEqual([100]);
  });

  it('count as sliding windows of distinct members would, through re-reads, expiry and many counters', () => {
    // The reference: member → last hit time in a Map (insertion order = time), capped at alertAt.
    const reference = new Map<string, Map<string, number>>();
    const expected = (key: string, member: string | undefined, now: number, windowMs: number, alertAt: number, seq: number) => {
      const w = reference.get(key) ?? new Map<string, number>();
      reference.set(key, w);
      const m = member ?? `#${seq}`;
      w.delete(m);
      w.set(m, now);
      while (w.size > alertAt) w.delete(w.keys().next().value as string);
      for (const [k, t] of w) if (t <= now - windowMs) w.delete(k);
      return w.size;
    };
    let s = 7;
    const next = (n: number) => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s % n;
    };
    const counters = new InProcessSuspiciousActivityCounters();
    let now = 0;
    for (let i = 0; i < 50_000; i++) {
      now += next(3) === 0 ? next(20_000) : 0;
      const failures = next(10) === 0;
      const key = failures ? `fa:${next(3)}` : `dr:${next(5)}`;
      const member = failures ? undefined : `credential-${next(next(2) ? 40 : 400)}`;
      const alertAt = failures ? 5 : 30;
      const [r] = counters.hitNow(now, [{ key, member, windowMs: 5 * MIN, alertAt }]);
      expect([i, r.count]).toEqual([i, expected(key, member, now, 5 * MIN, alertAt, i)]);
    }
  });
});
