import fc from 'fast-check';
import { GENESIS_HASH, HashableEntry, canonicalEntry, canonicalJson, computeEntryHash } from './canonical';

const entry = (over: Partial<HashableEntry> = {}): HashableEntry => ({
  id: '00000000-0000-4000-8000-000000000001',
  tenantId: 't1',
  sequence: 1,
  occurredAt: new Date('2026-01-02T03:04:05.678Z'),
  action: 'read',
  resource: 'cred-1',
  actorId: 'user-1',
  actorIp: null,
  userAgent: null,
  result: 'success',
  errorCode: null,
  durationMs: null,
  correlationId: null,
  details: null,
  previousHash: GENESIS_HASH,
  ...over,
});

describe('canonicalJson', () => {
  it('is independent of key insertion order at every depth', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (obj) => {
        const reversed = Object.fromEntries(Object.entries(obj).reverse());
        expect(canonicalJson(reversed)).toBe(canonicalJson(obj));
      }),
    );
    expect(canonicalJson({ b: { y: 1, x: [2, { d: 1, c: 2 }] }, a: null })).toBe('{"a":null,"b":{"x":[2,{"c":2,"d":1}],"y":1}}');
  });

  it('round-trips through JSON.parse unchanged (what the details column relies on)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const s = canonicalJson(v);
        expect(canonicalJson(JSON.parse(s))).toBe(s);
      }),
    );
  });

  it('refuses values JSON cannot represent faithfully', () => {
    expect(() => canonicalJson(Number.NaN)).toThrow(TypeError);
    expect(() => canonicalJson(() => 1)).toThrow(TypeError);
  });
});

describe('computeEntryHash', () => {
  it('is a stable SHA-256 hex digest', () => {
    const h = computeEntryHash(entry());
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(computeEntryHash(entry())).toBe(h);
  });

  it('is exactly canonicalJson of all fields (the documented format), and accepts precomputed details', () => {
    const opt = fc.option(fc.string(), { nil: null });
    const arbitraryEntry = fc.record({
      id: fc.uuid(),
      tenantId: fc.string({ minLength: 1 }),
      sequence: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      occurredAt: fc.date({ min: new Date(0), max: new Date(8.64e15), noInvalidDate: true }),
      action: fc.string({ minLength: 1 }),
      resource: fc.string({ minLength: 1 }),
      actorId: fc.string({ minLength: 1 }),
      actorIp: opt,
      userAgent: opt,
      result: fc.constantFrom('success', 'failure', 'denied'),
      errorCode: opt,
      durationMs: fc.option(fc.integer({ min: 0 }), { nil: null }),
      correlationId: opt,
      details: fc.option(fc.dictionary(fc.string(), fc.jsonValue()), { nil: null }),
      previousHash: fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 }),
    });
    fc.assert(
      fc.property(arbitraryEntry, (e) => {
        const reference = `cv-audit-v1\n${canonicalJson({ ...e, occurredAt: e.occurredAt.getTime() })}`;
        expect(canonicalEntry(e)).toBe(reference);
        expect(canonicalEntry(e, e.details === null ? 'null' : canonicalJson(e.details))).toBe(reference);
      }),
    );
    expect(() => canonicalEntry(entry({ durationMs: Number.NaN }))).toThrow(TypeError);
  });

  it('writes absent optional fields as explicit nulls', () => {
    const s = canonicalEntry(entry());
    for (const f of ['actorIp', 'userAgent', 'errorCode', 'durationMs', 'correlationId', 'details']) {
      expect(s).toContain(`"${f}":null`);
    }
  });

  it('changes when any covered field changes, including the link to the previous row', () => {
    const base = computeEntryHash(entry());
    const changes: Array<Partial<HashableEntry>> = [
      { id: '00000000-0000-4000-8000-000000000002' },
      { tenantId: 't2' },
      { sequence: 2 },
      { occurredAt: new Date('2026-01-02T03:04:05.679Z') },
      { action: 'delete' },
      { resource: 'cred-2' },
      { actorId: 'user-2' },
      { actorIp: '10.0.0.1' },
      { userAgent: 'curl' },
      { result: 'failure' },
      { errorCode: '1003' },
      { durationMs: 0 },
      { correlationId: 'c' },
      { details: {} },
      { details: { a: 1 } },
      { previousHash: 'f'.repeat(64) },
    ];
    const hashes = changes.map((c) => computeEntryHash(entry(c)));
    for (const h of hashes) expect(h).not.toBe(base);
    expect(new Set(hashes).size).toBe(hashes.length);
  });

  it('does not let a value move between fields unnoticed', () => {
    expect(computeEntryHash(entry({ actorIp: 'x', userAgent: null }))).not.toBe(
      computeEntryHash(entry({ actorIp: null, userAgent: 'x' })),
    );
  });
});
