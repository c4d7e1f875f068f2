/**
 * Makes `details` safe to store: drops every member whose key looks like it holds a credential
 * value, and every string that looks like one (PEM private key, JWT, bearer header), whatever its
 * key. Output is plain JSON data (Dates → ISO strings, bigints → strings), bounded in depth, string
 * length and total size. The names of stripped members are reported (they are not secret).
 */
import { fixedDetails } from './canonical';

/** Normalised keys that are values themselves. */
const EXACT = new Set([
  'value', 'values', 'key', 'secret', 'secrets', 'token', 'tokens', 'password', 'passwd', 'pwd', 'pass', 'passphrase',
  'privatekey', 'clientsecret', 'refreshtoken', 'accesstoken', 'idtoken', 'apikey', 'apisecret', 'authorization',
  'auth', 'cookie', 'setcookie', 'bearer', 'credential', 'credentials', 'pem', 'pfx', 'p12', 'plaintext', 'ciphertext',
  'signingkey', 'signingsecret', 'webhooksecret', 'sharedsecret', 'sessionkey', 'datakey', 'masterkey', 'encryptionkey',
  'otp', 'pin', 'cvv', 'ssn',
]);

/** A key containing one of these is sensitive, unless it ends in a metadata suffix below. */
const CONTAINS = ['secret', 'password', 'passwd', 'token', 'privatekey', 'apikey', 'credential', 'passphrase', 'authorization', 'cookie'];

/** `secretName`, `tokenType`, `tokenExpiresAt`, `credentialId`, `passwordPolicy`... describe, not reveal. */
const SAFE_SUFFIXES = [
  'name', 'names', 'id', 'ids', 'version', 'versions', 'type', 'types', 'count', 'expiresat', 'expireson', 'expiry',
  'createdat', 'updatedat', 'rotatedat', 'refreshedat', 'policy', 'kind', 'status', 'ttl', 'ttlms', 'ttlseconds',
  'lifetime', 'lifetimems', 'endpoint', 'url', 'uri', 'scope', 'scopes', 'generation', 'store',
];

const MAX_DEPTH = 6;
const MAX_STRING = 1024;
const MAX_KEYS = 100;
const MAX_ARRAY = 100;
const MAX_TOTAL = 16 * 1024;

const PEM_PRIVATE = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;
const JWT = /^eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*$/;
const BEARER = /^(bearer|basic)\s+\S+/i;

/** NUL, or a UTF-16 surrogate without its pair. */
const NOT_STORABLE_SOURCE = '\\u0000|[\\uD800-\\uDBFF](?![\\uDC00-\\uDFFF])|(?<![\\uD800-\\uDBFF])[\\uDC00-\\uDFFF]';
const NOT_STORABLE = new RegExp(NOT_STORABLE_SOURCE);
const NOT_STORABLE_ALL = new RegExp(NOT_STORABLE_SOURCE, 'g');

/**
 * Text every database stores and hashes the same way: lone UTF-16 surrogates become U+FFFD (as
 * UTF-8 encoding would make them) and NUL becomes U+FFFD (PostgreSQL text cannot hold it). A
 * request with `%00` in a path must not make an audit batch unwritable.
 */
export function storable(s: string): string {
  return isWellFormed(s) && !s.includes('\u0000') ? s : s.replace(NOT_STORABLE_ALL, '\uFFFD');
}

/** `String.prototype.isWellFormed` (Node 20; not in the ES2023 lib types): half the cost of the regex test. */
const isWellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as string & { isWellFormed(): boolean }).isWellFormed()
    : (s) => !NOT_STORABLE.test(s);

export function normaliseKey(key: string): string {
  return key.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** Verdicts on the few key names details actually use (bounded: cleared when full). */
const keyVerdicts = new Map<string, boolean>();
const MAX_KEY_VERDICTS = 1000;

export function isSensitiveKey(key: string): boolean {
  let verdict = keyVerdicts.get(key);
  if (verdict === undefined) {
    verdict = keyIsSensitive(key);
    if (keyVerdicts.size >= MAX_KEY_VERDICTS) keyVerdicts.clear();
    if (key.length <= 64) keyVerdicts.set(key, verdict);
  }
  return verdict;
}

function keyIsSensitive(key: string): boolean {
  const k = normaliseKey(key);
  if (EXACT.has(k)) return true;
  if (!CONTAINS.some((c) => k.includes(c))) return false;
  return !SAFE_SUFFIXES.some((s) => k.endsWith(s) && k.length > s.length);
}

export function looksLikeSecretValue(value: string): boolean {
  if (PEM_PRIVATE.test(value)) return true;
  const v = value.trim();
  return JWT.test(v) || BEARER.test(v);
}

export interface SanitisedDetails {
  details: Record<string, unknown> | null;
  /** Paths of stripped members, e.g. `["config.clientSecret"]`. */
  redacted: string[];
}

export function sanitiseDetails(input: unknown): SanitisedDetails {
  const redacted: string[] = [];
  if (input === undefined || input === null) return { details: null, redacted };
  if (typeof input !== 'object' || Array.isArray(input)) {
    return { details: null, redacted: ['(details must be an object)'] };
  }
  const obj = input as Record<string, unknown>;
  const known = flatSeen.get(obj);
  if (known !== undefined && (known.members === undefined || sameMembers(obj, known.members))) return { details: known.details, redacted };
  const flat = flatDetails(obj);
  if (flat === undefined) return sanitiseNested(input, redacted);
  const frozen = Object.isFrozen(obj);
  if (known !== undefined || frozen || seenRecently(obj)) {
    if (flat.details !== null) fixedDetails(flat.details);
    // Frozen with only data members: they cannot change (nor the prototype), so nothing to compare next
    // time — a getter could still answer differently, so an accessor keeps the comparison.
    flatSeen.set(obj, frozen && onlyDataMembers(obj) ? { details: flat.details } : flat);
  }
  return { details: flat.details, redacted };
}

/** The members of a flat input as they were read. */
interface FlatMembers {
  proto: unknown;
  keys: string[];
  values: unknown[];
}

/** A flat input sanitised: the result, and its members unless the input was frozen (they cannot change). */
interface FlatResult {
  members?: FlatMembers;
  details: Record<string, string | number | boolean> | null;
}

/**
 * Flat results by input object. A cached read hands the audit lib the SAME details object on every
 * read of a credential, and re-checking its members for secrets (and re-canonicalising them for the
 * hash) was most of the per-row cost of a warm read. A hit is taken only when the object still has
 * exactly the members it had — same keys, same order, same values — so one changed since then is
 * sanitised afresh: the result is the same as without this cache, whatever the caller does. The
 * result is frozen (many rows share it) and its canonical JSON kept (`fixedDetails`).
 *
 * Only objects that live long are remembered — frozen ones, and ones seen again among the last
 * `RECENT` others: a WeakMap entry per short-lived object cost ~7 µs a row in garbage collection.
 */
const flatSeen = new WeakMap<object, FlatResult>();

const RECENT = 64;
const recent: Array<object | undefined> = new Array(RECENT);
let recentNext = 0;

/** Whether `obj` is among the last `RECENT` objects asked about (then forgotten); else it now is. */
function seenRecently(obj: object): boolean {
  for (let i = 0; i < RECENT; i++) {
    if (recent[i] === obj) {
      recent[i] = undefined;
      return true;
    }
  }
  recent[recentNext] = obj;
  recentNext = (recentNext + 1) % RECENT;
  return false;
}

function onlyDataMembers(obj: object): boolean {
  return Reflect.ownKeys(obj).every((k) => 'value' in Reflect.getOwnPropertyDescriptor(obj, k)!);
}

function sameMembers(input: Record<string, unknown>, seen: FlatMembers): boolean {
  if (Object.getPrototypeOf(input) !== seen.proto) return false;
  const { keys, values } = seen;
  let i = 0;
  for (const k in input) {
    if (!Object.prototype.hasOwnProperty.call(input, k)) continue;
    if (i >= keys.length || keys[i] !== k || !Object.is(input[k], values[i])) return false;
    i++;
  }
  return i === keys.length;
}

/** Upper bound of the JSON length of one flat member (every character escaped as `\uXXXX`). */
const jsonBound = (k: string, v: string) => 6 * (k.length + v.length) + 8;

/**
 * The usual case, without the general walk: a plain object of short primitive members, none of them
 * sensitive — what every read and write event carries. Yields exactly what the general walk yields
 * for it (and the members it read); `undefined` hands anything else (nesting, a dropped member, a
 * long string) to the walk.
 */
function flatDetails(input: Record<string, unknown>): Required<FlatResult> | undefined {
  const proto = Object.getPrototypeOf(input);
  if (proto !== Object.prototype && proto !== null) return undefined;
  const out: Record<string, string | number | boolean> = {};
  const keys: string[] = [];
  const values: unknown[] = [];
  let n = 0;
  let bound = 2;
  for (const k in input) {
    if (!Object.prototype.hasOwnProperty.call(input, k)) continue;
    const v = input[k];
    keys.push(k);
    values.push(v);
    if (++n > MAX_KEYS || looksLikeSecretValue(k)) return undefined;
    if (typeof v === 'boolean') {
      out[storable(k)] = v;
      bound += jsonBound(k, 'false');
      continue;
    }
    if (isSensitiveKey(k)) return undefined;
    if (typeof v === 'string') {
      if (v.length > MAX_STRING || looksLikeSecretValue(v)) return undefined;
      out[storable(k)] = storable(v);
      bound += jsonBound(k, v);
    } else if (typeof v === 'number') {
      out[storable(k)] = Number.isFinite(v) ? v : String(v);
      bound += jsonBound(k, '-1.7976931348623157e+308');
    } else if (v === undefined || typeof v === 'function' || typeof v === 'symbol') {
      continue;
    } else {
      return undefined;
    }
  }
  if (bound > MAX_TOTAL) return undefined;
  return { members: { proto, keys, values }, details: n > 0 && Object.keys(out).length > 0 ? out : null };
}

function sanitiseNested(input: object, redacted: string[]): SanitisedDetails {
  const seen = new WeakSet<object>();

  const clean = (value: unknown, path: string, depth: number): unknown => {
    if (value === null) return null;
    switch (typeof value) {
      case 'string':
        if (looksLikeSecretValue(value)) {
          redacted.push(path || '(root)');
          return undefined;
        }
        return storable(value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…[truncated]` : value);
      case 'number':
        return Number.isFinite(value) ? value : String(value);
      case 'boolean':
        return value;
      case 'bigint':
        return value.toString();
      case 'undefined':
      case 'function':
      case 'symbol':
        return undefined;
    }
    if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
    // Binary data is never safe to log: it is exactly what key material looks like.
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
      redacted.push(path || '(root)');
      return undefined;
    }
    const obj = value as object;
    if (seen.has(obj)) return '[circular]';
    if (depth >= MAX_DEPTH) return '[truncated]';
    seen.add(obj);
    try {
      if (Array.isArray(obj)) {
        const out = obj.slice(0, MAX_ARRAY).map((v, i) => clean(v, `${path}[${i}]`, depth + 1) ?? null);
        if (obj.length > MAX_ARRAY) out.push(`…[${obj.length - MAX_ARRAY} more]`);
        return out;
      }
      if (obj instanceof Map || obj instanceof Set) return undefined;
      const out: Record<string, unknown> = {};
      let n = 0;
      for (const [k, v] of Object.entries(obj)) {
        if (looksLikeSecretValue(k)) {
          redacted.push(path ? `${path}.[key]` : '[key]');
          continue;
        }
        const p = path ? `${path}.${k.slice(0, 64)}` : k.slice(0, 64);
        // A boolean cannot carry a credential: `refreshTokenRotated: true` is a fact worth keeping.
        if (isSensitiveKey(k) && typeof v !== 'boolean') {
          redacted.push(p);
          continue;
        }
        if (n++ >= MAX_KEYS) {
          out['…'] = 'truncated';
          break;
        }
        const c = clean(v, p, depth + 1);
        if (c !== undefined) out[storable(k)] = c;
      }
      return out;
    } finally {
      seen.delete(obj);
    }
  };

  let details = clean(input, '', 0) as Record<string, unknown>;
  if (redacted.length > 0) details = { ...details, _redacted: [...redacted] };
  if (JSON.stringify(details).length > MAX_TOTAL) {
    details = { _truncated: true, ...(redacted.length ? { _redacted: redacted.slice(0, 50) } : {}) };
  }
  return { details: Object.keys(details).length ? details : null, redacted };
}
