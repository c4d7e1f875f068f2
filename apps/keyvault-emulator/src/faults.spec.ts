import { FaultInjector, validateFaultSpec } from './faults';

describe('FaultInjector', () => {
  it('applies a status fault to the next N matching requests only', () => {
    const f = new FaultInjector(() => 0, () => 0);
    f.add({ kind: 'status', status: 503, count: 2, operations: ['getSecret'], retryAfterSeconds: 3 });
    expect(f.decide('setSecret').kind).toBe('none');
    expect(f.decide('getSecret')).toEqual({ kind: 'status', status: 503, retryAfterSeconds: 3, latencyMs: 0 });
    expect(f.decide('getSecret').kind).toBe('status');
    expect(f.decide('getSecret').kind).toBe('none');
    expect(f.active).toBe(0);
  });

  it('honours rate with the injected random source', () => {
    let r = 0.7;
    const f = new FaultInjector(() => 0, () => r);
    f.add({ kind: 'reset', rate: 0.5 });
    expect(f.decide('getSecret').kind).toBe('none');
    r = 0.2;
    expect(f.decide('getSecret').kind).toBe('reset');
  });

  it('expires after durationMs', () => {
    let now = 1000;
    const f = new FaultInjector(() => now, () => 0);
    f.add({ kind: 'status', status: 500, durationMs: 100 });
    expect(f.decide('x').kind).toBe('status');
    now = 1100;
    expect(f.decide('x').kind).toBe('none');
  });

  it('adds up latencies and lets the first status/reset decide', () => {
    const f = new FaultInjector(() => 0, () => 0);
    f.add({ kind: 'latency', latencyMs: 100 });
    f.add({ kind: 'status', status: 429 });
    f.add({ kind: 'latency', latencyMs: 50 });
    f.add({ kind: 'reset' });
    expect(f.decide('getSecret')).toEqual({ kind: 'status', status: 429, retryAfterSeconds: undefined, latencyMs: 150 });
    f.clear();
    expect(f.decide('getSecret')).toEqual({ kind: 'none', latencyMs: 0 });
  });

  it("delays the answer of an operation that runs with phase 'response', never that of a faulted one", () => {
    const f = new FaultInjector(() => 0, () => 0);
    f.add({ kind: 'latency', latencyMs: 400, phase: 'response', operations: ['createKey'] });
    f.add({ kind: 'latency', latencyMs: 100, operations: ['createKey'] });
    expect(f.decide('createKey')).toEqual({ kind: 'none', latencyMs: 100, responseLatencyMs: 400 });
    expect(f.decide('getKey')).toEqual({ kind: 'none', latencyMs: 0 });
    f.add({ kind: 'status', status: 503, operations: ['createKey'] });
    expect(f.decide('createKey')).toEqual({ kind: 'status', status: 503, retryAfterSeconds: undefined, latencyMs: 100 });
  });

  it('faults only the objects named in names (case-insensitive), counting only their requests', () => {
    const f = new FaultInjector(() => 0, () => 0);
    f.add({ kind: 'status', status: 500, count: 2, operations: ['setSecret'], names: ['Bad-Secret'] });
    expect(f.decide('setSecret', 'other')).toEqual({ kind: 'none', latencyMs: 0 });
    expect(f.decide('setSecret')).toEqual({ kind: 'none', latencyMs: 0 });
    expect(f.decide('getSecret', 'bad-secret')).toEqual({ kind: 'none', latencyMs: 0 });
    expect(f.decide('setSecret', 'bad-secret').kind).toBe('status');
    expect(f.decide('setSecret', 'BAD-SECRET').kind).toBe('status');
    expect(f.active).toBe(0);
    expect(() => validateFaultSpec({ kind: 'reset', names: 'bad-secret' })).toThrow(/names/);
  });

  it('validates specs with messages that say what to fix', () => {
    expect(() => validateFaultSpec({ kind: 'boom' })).toThrow(/kind must be/);
    expect(() => validateFaultSpec({ kind: 'status', status: 404 })).toThrow(/429, 500 or 503/);
    expect(() => validateFaultSpec({ kind: 'latency' })).toThrow(/latencyMs/);
    expect(() => validateFaultSpec({ kind: 'reset', count: 0 })).toThrow(/count/);
    expect(() => validateFaultSpec({ kind: 'reset', phase: 'response' })).toThrow(/phase/);
    expect(() => validateFaultSpec({ kind: 'latency', latencyMs: 1, phase: 'later' })).toThrow(/phase/);
    expect(() => validateFaultSpec({ kind: 'reset', operations: 'getSecret' })).toThrow(/operations/);
    expect(validateFaultSpec({ kind: 'reset', rate: 1 })).toEqual({ kind: 'reset', rate: 1 });
  });
});
