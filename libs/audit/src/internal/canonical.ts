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
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: unsupported type ${typeof value}`);
  }
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
  const opt = (v: string | null | undefined) => (v === null || v === undefined ? 'null' : q(v));
  const details = detailsJson ?? (e.details === null || e.details === undefined ? 'null' : canonicalJson(e.details));
  return (
    `${HASH_FORMAT}{"action":${q(e.action)},"actorId":${q(e.actorId)},"actorIp":${opt(e.actorIp)},` +
    `"correlationId":${opt(e.correlationId)},"details":${details},` +
    `"durationMs":${e.durationMs === null || e.durationMs === undefined ? 'null' : finite(e.durationMs)},` +
    `"errorCode":${opt(e.errorCode)},"id":${q(e.id)},"occurredAt":${finite(e.occurredAt.getTime())},` +
    `"previousHash":${q(e.previousHash)},"resource":${q(e.resource)},"result":${q(e.result)},` +
    `"sequence":${finite(e.sequence)},"tenantId":${q(e.tenantId)},"userAgent":${opt(e.userAgent)}}`
  );
}

function finite(n: number): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new TypeError('canonicalEntry: non-finite number');
  return q(n);
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
