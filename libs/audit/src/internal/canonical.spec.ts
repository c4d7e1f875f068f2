import fc from 'fast-check';
import { GENESIS_HASH, HashableEntry, canonicalDetails, canonicalEntry, canonicalJson, computeEntryHash, fixedDetails } from './canonical';

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

/** Strings with everything JSON.stringify escapes (quotes, backslashes, controls, lone surrogates) and what it does not. */
const tricky = fc.string({
  unit: fc.oneof(fc.constantFrom('"', '\\', '\u0000', '\u001f', '\u007f', '\u2028', '\uD800', '\uDFFF', 'é', '😀', 'a'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })),
  maxLength: 12,
});

/** An independent reference: JSON.stringify for every string and number, keys sorted at every depth. */
const reference = (v: unknown): string => {
  if (Array.isArray(v)) return `[${v.map(reference).join(',')}]`;
  if (!v || typeof v !== 'object') return JSON.stringify(v);
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${reference(o[k])}`).join(',')}}`;
};

describe('canonicalJson', () => {
  it('is JSON.stringify of every string and number, keys sorted at every depth, whatever the strings hold (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), fc.dictionary(tricky, fc.oneof(tricky, fc.double({ noNaN: true, noDefaultInfinity: true }))), (v, d) => {
        expect(canonicalJson(v)).toBe(reference(v));
        expect(canonicalJson(d)).toBe(reference(d));
      }),
    );
    expect(canonicalJson({ z: -0, a: 1e21, m: 5e-7 })).toBe('{"a":1e+21,"m":5e-7,"z":0}');
  });

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

describe('fixedDetails / canonicalDetails', () => {
  it('freezes a flat details object and gives its canonical JSON from then on; any other object is canonicalised as given', () => {
    const d = { version: 3, type: 'api_key', ok: true };
    fixedDetails(d);
    expect(Object.isFrozen(d)).toBe(true);
    expect(canonicalDetails(d)).toBe('{"ok":true,"type":"api_key","version":3}');
    const open: Record<string, unknown> = { b: 1 };
    expect(canonicalDetails(open)).toBe('{"b":1}');
    open.a = 'x';
    expect(canonicalDetails(open)).toBe('{"a":"x","b":1}');
  });
});

describe('computeEntryHash', () => {
  // Rows already stored were hashed with exactly these bytes: a change here breaks every chain.
  it('hashes fixed rows to the same bytes and digests as rows already stored (format cv-audit-v1)', () => {
    const full = entry({
      id: '0190f3c2-7d1e-7a52-9b8e-1c2d3e4f5a6b',
      tenantId: 'tenant-ü',
      sequence: 9007199254740991,
      occurredAt: new Date(Date.UTC(2026, 11, 3, 2, 30, 0, 123)),
      action: 'credential.read',
      resource: 'cred-1',
      actorId: 'apikey:ak_1',
      actorIp: '10.0.0.7',
      userAgent: 'agent/1.0 "q" \\ \u2028 😀 \u0007',
      durationMs: 0,
      correlationId: 'req-1',
      details: { version: 3, type: 'api_key', z: 'é', a: [1.5, true, null, { y: -0, b: 'x' }], big: 2 ** 52 },
      previousHash: 'ab'.repeat(32),
    });
    expect(canonicalEntry(full)).toBe(
      'cv-audit-v1\n{"action":"credential.read","actorId":"apikey:ak_1","actorIp":"10.0.0.7","correlationId":"req-1",' +
        '"details":{"a":[1.5,true,null,{"b":"x","y":0}],"big":4503599627370496,"type":"api_key","version":3,"z":"é"},' +
        '"durationMs":0,"errorCode":null,"id":"0190f3c2-7d1e-7a52-9b8e-1c2d3e4f5a6b","occurredAt":1796265000123,' +
        `"previousHash":"${'ab'.repeat(32)}","resource":"cred-1","result":"success","sequence":9007199254740991,` +
        '"tenantId":"tenant-ü","userAgent":"agent/1.0 \\"q\\" \\\\ \u2028 😀 \\u0007"}',
    );
    expect(computeEntryHash(full)).toBe('e4ac3d08308422d7a5c275e4177907b8618f245f0613ab1d8c9181a7172a7540');
    const bare = { ...full, actorIp: null, userAgent: null, durationMs: null, correlationId: null, details: null, previousHash: GENESIS_HASH, sequence: 1 };
    expect(computeEntryHash(bare)).toBe('06e389b152f7574a558cb2ec99d7de4672a05642d5b582f13ebef04b8d67bfb0');
    // One escape of each kind in its own field (as verify may read them from rows written before `storable`).
    const escapes = entry({
      ...full,
      tenantId: 't\u2029',
      sequence: 2,
      occurredAt: new Date(0),
      resource: 'a\\b',
      actorId: 'x\uD800',
      actorIp: null,
      userAgent: 'u\uDC00\uD83D\uDE00',
      result: 'failure',
      errorCode: 'e"',
      durationMs: 12,
      correlationId: 'c\u0001',
      details: { 'k\\': 'v\uD800', '\u0000': 1 },
      previousHash: 'ff'.repeat(32),
    });
    expect(computeEntryHash(escapes)).toBe('6d7551ba486d90fdbf119bd9c71e43226169f1f07961a965b3b0b801a3ed96a5');
  });


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
