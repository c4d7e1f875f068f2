import * as crypto from 'node:crypto';

/** `previousHash` of the first row of a chain. */
export const GENESIS_HASH = '0'.repeat(64);

/** Prefix of every hashed payload; bump it (and keep the old code path for verify) to change the format. */
const HASH_FORMAT = 'cv-audit-v1\n';

const q = JSON.stringify;

/**
 * Deterministic JSON: object keys sorted by UTF-16 code unit, no whitespace, `undefined` object
 * members omitted (like JSON), non-finite numbers and other non-JSON values refused. The same value
 * always yields the same string, whatever the key insertion order.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return str(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
      return String(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).sort();
      let out = '';
      for (const k of keys) {
        const v = obj[k];
        if (v !== undefined) out += `${out ? ',' : ''}${str(k)}:${canonicalJson(v)}`;
      }
      return `{${out}}`;
    }
    default:
      throw new TypeError(`canonicalJson: unsupported type ${typeof value}`);
  }
}

/** Canonical JSON of the details objects `fixedDetails` froze. */
const fixedJson = new WeakMap<object, string>();

/**
 * Freezes `details` — a flat object of primitive members, which can then never change — and
 * remembers its canonical JSON: a cached read's details object is shared by every row of its reads.
 */
export function fixedDetails(details: Record<string, string | number | boolean>): void {
  fixedJson.set(Object.freeze(details), canonicalJson(details));
}

/** `canonicalJson(details)`, remembered for the objects `fixedDetails` froze. */
export function canonicalDetails(details: Record<string, unknown>): string {
  return fixedJson.get(details) ?? canonicalJson(details);
}

/** The fields of a row that the hash covers — all of them except the hash itself. */
export interface HashableEntry {
  id: string;
  tenantId: string;
  sequence: number;
  occurredAt: Date;
  action: string;
  resource: string;
  actorId: string;
  actorIp: string | null;
  userAgent: string | null;
  result: string;
  errorCode: string | null;
  durationMs: number | null;
  correlationId: string | null;
  details: Record<string, unknown> | null;
  previousHash: string;
}

/**
 * The exact byte string that is hashed for a row: `canonicalJson` of every field (absent ones as
 * explicit null), written out directly in sorted key order because it runs once per audit row.
 * `detailsJson` is `canonicalJson(e.details)` when the caller has it already (it is also the stored text).
 */
export function canonicalEntry(e: HashableEntry, detailsJson?: string): string {
  const details = detailsJson ?? (e.details === null || e.details === undefined ? 'null' : canonicalJson(e.details));
  return (
    `${HASH_FORMAT}{"action":${str(e.action)},"actorId":${str(e.actorId)},"actorIp":${opt(e.actorIp)},` +
    `"correlationId":${opt(e.correlationId)},"details":${details},` +
    `"durationMs":${e.durationMs === null || e.durationMs === undefined ? 'null' : finite(e.durationMs)},` +
    `"errorCode":${opt(e.errorCode)},"id":${str(e.id)},"occurredAt":${finite(e.occurredAt.getTime())},` +
    `"previousHash":${str(e.previousHash)},"resource":${str(e.resource)},"result":${str(e.result)},` +
    `"sequence":${finite(e.sequence)},"tenantId":${str(e.tenantId)},"userAgent":${opt(e.userAgent)}}`
  );
}

/** What `JSON.stringify` would escape: `"`, `\\`, control characters, and any surrogate (a lone one is escaped). */
const NEEDS_ESCAPE_SOURCE = '["\\\\\\u0000-\\u001f\\ud800-\\udfff]';
const NEEDS_ESCAPE = new RegExp(NEEDS_ESCAPE_SOURCE);

/**
 * `JSON.stringify(s)`: a string with nothing to escape is just quoted. Same output, about half the
 * cost for the short ids and names of a row (JSON.stringify was ~1 µs of the ~1.5 µs of building it).
 */
function str(s: string): string {
  return typeof s === 'string' && !NEEDS_ESCAPE.test(s) ? `"${s}"` : q(s);
}

function opt(v: string | null | undefined): string {
  return v === null || v === undefined ? 'null' : str(v);
}

function finite(n: number): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new TypeError('canonicalEntry: non-finite number');
  // A finite number's JSON text is its ECMAScript string (-0 included: both give "0").
  return String(n);
}

/** SHA-256 (lowercase hex) of the canonical encoding. */
export function computeEntryHash(e: HashableEntry, detailsJson?: string): string {
  return sha256Hex(canonicalEntry(e, detailsJson));
}

/** One-shot `crypto.hash` where Node has it (20.12+): about half the cost of a Hash object per row. */
const sha256Hex: (data: string) => string =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('sha256', data, 'hex')
    : (data) => crypto.createHash('sha256').update(data, 'utf8').digest('hex');
