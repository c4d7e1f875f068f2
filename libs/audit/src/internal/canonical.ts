import { createHash } from 'node:crypto';

/** `previousHash` of the first row of a chain. */
export const GENESIS_HASH = '0'.repeat(64);

/** Prefix of every hashed payload; bump it (and keep the old code path for verify) to change the format. */
const HASH_FORMAT = 'cv-audit-v1\n';

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

/** The exact byte string that is hashed for a row: every field present, absent ones as explicit null. */
export function canonicalEntry(e: HashableEntry): string {
  return (
    HASH_FORMAT +
    canonicalJson({
      id: e.id,
      tenantId: e.tenantId,
      sequence: e.sequence,
      occurredAt: e.occurredAt.getTime(),
      action: e.action,
      resource: e.resource,
      actorId: e.actorId,
      actorIp: e.actorIp ?? null,
      userAgent: e.userAgent ?? null,
      result: e.result,
      errorCode: e.errorCode ?? null,
      durationMs: e.durationMs ?? null,
      correlationId: e.correlationId ?? null,
      details: e.details ?? null,
      previousHash: e.previousHash,
    })
  );
}

/** SHA-256 (lowercase hex) of the canonical encoding. */
export function computeEntryHash(e: HashableEntry): string {
  return createHash('sha256').update(canonicalEntry(e), 'utf8').digest('hex');
}
