import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  WebhookMissingIdError,
  WebhookMissingSignatureError,
  WebhookMissingTimestampError,
  WebhookSecretValidationError,
  WebhookSignatureMismatchError,
  WebhookTimestampTooNewError,
  WebhookTimestampTooOldError,
} from './webhook-secret.errors';

/**
 * Standard Webhooks (https://www.standardwebhooks.com) as pure functions: the signed content is
 * `{webhook-id}.{webhook-timestamp}.{raw body}`, HMAC-SHA256 keyed with the base64-decoded part of a
 * `whsec_` secret, sent as `v1,<base64>` entries (space-separated, so several secrets can sign during
 * a rotation). Nothing here logs or puts a secret, a signature or a body into an error.
 */

export const WEBHOOK_SECRET_PREFIX = 'whsec_';
/** Bytes of a generated secret (the spec asks for 24..64). */
export const WEBHOOK_SECRET_BYTES = 32;
export const WEBHOOK_ID_HEADER = 'webhook-id';
export const WEBHOOK_TIMESTAMP_HEADER = 'webhook-timestamp';
export const WEBHOOK_SIGNATURE_HEADER = 'webhook-signature';
/** Signatures of one header looked at: more would only let a sender make us compute more HMACs. */
export const MAX_SIGNATURES_CHECKED = 16;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const MSG_ID = /^[\x21-\x7e]{1,256}$/;
const TIMESTAMP = /^\d{1,15}$/;

export type WebhookBody = string | Uint8Array;

/** The headers of a signed message. A type, not an interface: it is then an `IncomingWebhookHeaders` too, so verify takes what sign gave. */
export type WebhookHeaders = {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
};

/** Incoming headers: any case, a value or a list of values (Node's IncomingHttpHeaders fits). */
export type IncomingWebhookHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

export interface VerifiedWebhook {
  msgId: string;
  /** The sender's timestamp (seconds resolution). */
  timestamp: Date;
  /** Index, in the secrets given, of the one that matched (0 = the first). */
  secretIndex: number;
}

/** A new secret: `whsec_` + base64 of 32 random bytes. */
export function generateWebhookSecret(): string {
  return WEBHOOK_SECRET_PREFIX + randomBytes(WEBHOOK_SECRET_BYTES).toString('base64');
}

/** The HMAC key of a secret: the base64 after `whsec_` (the prefix is optional, as in the reference). */
export function webhookSecretKey(secret: string): Buffer {
  if (typeof secret !== 'string') throw new WebhookSecretValidationError('A webhook secret must be a string', 'secret');
  const encoded = secret.startsWith(WEBHOOK_SECRET_PREFIX) ? secret.slice(WEBHOOK_SECRET_PREFIX.length) : secret;
  if (encoded.length === 0 || !BASE64.test(encoded)) {
    throw new WebhookSecretValidationError('A webhook secret must be whsec_ followed by base64', 'secret');
  }
  return Buffer.from(encoded, 'base64');
}

/** The raw HMAC-SHA256 of `id.timestamp.body`. */
export function webhookSignatureBytes(key: Uint8Array, msgId: string, timestampSeconds: number, body: WebhookBody): Buffer {
  const hmac = createHmac('sha256', key);
  hmac.update(`${msgId}.${timestampSeconds}.`, 'utf8');
  hmac.update(typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
  return hmac.digest();
}

/**
 * The three headers of a webhook signed with `secrets` (one `v1,` entry each, in order; normally
 * only the current secret). `timestamp` is a Date or epoch seconds.
 */
export function signWebhookPayload(secrets: readonly string[], msgId: string, timestamp: Date | number, body: WebhookBody): WebhookHeaders {
  assertMsgId(msgId);
  assertBody(body);
  if (secrets.length === 0) throw new WebhookSecretValidationError('At least one secret is needed to sign', 'secrets');
  const seconds = timestamp instanceof Date ? Math.floor(timestamp.getTime() / 1000) : timestamp;
  if (!Number.isSafeInteger(seconds) || seconds < 0) throw new WebhookSecretValidationError('timestamp must be a Date or a non-negative integer of seconds', 'timestamp');
  const signatures = secrets.map((s) => `v1,${webhookSignatureBytes(webhookSecretKey(s), msgId, seconds, body).toString('base64')}`);
  return { 'webhook-id': msgId, 'webhook-timestamp': String(seconds), 'webhook-signature': signatures.join(' ') };
}

/** What a received webhook's headers say, checked before any secret is needed. */
export interface CheckedWebhookHeaders {
  msgId: string;
  timestampSeconds: number;
  signatures: Buffer[];
}

/**
 * The checks that need no secret, in order: the id, the timestamp (± `toleranceSeconds` around `now`), the
 * signature header. Done first so a webhook refused on its headers alone reads no secret (no vault read, no audit row).
 */
export function checkWebhookHeaders(body: WebhookBody, headers: IncomingWebhookHeaders, options: { now: Date; toleranceSeconds: number }): CheckedWebhookHeaders {
  assertBody(body);
  const msgId = header(headers, WEBHOOK_ID_HEADER);
  if (msgId === undefined || !MSG_ID.test(msgId)) throw new WebhookMissingIdError();
  const rawTimestamp = header(headers, WEBHOOK_TIMESTAMP_HEADER);
  if (rawTimestamp === undefined || !TIMESTAMP.test(rawTimestamp)) throw new WebhookMissingTimestampError();
  const timestamp = Number(rawTimestamp);
  const now = Math.floor(options.now.getTime() / 1000);
  if (now - timestamp > options.toleranceSeconds) throw new WebhookTimestampTooOldError(options.toleranceSeconds);
  if (timestamp - now > options.toleranceSeconds) throw new WebhookTimestampTooNewError(options.toleranceSeconds);
  const signatures = parseSignatures(header(headers, WEBHOOK_SIGNATURE_HEADER));
  if (signatures.length === 0) throw new WebhookMissingSignatureError();
  return { msgId, timestampSeconds: timestamp, signatures };
}

/**
 * Verifies a webhook against every secret given (constant-time comparisons). Checks, in order: the
 * id, the timestamp (± `toleranceSeconds` around `now`), the signature header, then the signatures.
 * Fails with a WebhookVerificationError whose code says which check failed.
 */
export function verifyWebhookPayload(
  secrets: readonly string[],
  body: WebhookBody,
  headers: IncomingWebhookHeaders,
  options: { now: Date; toleranceSeconds: number },
): VerifiedWebhook {
  return matchWebhookSignature(secrets, body, checkWebhookHeaders(body, headers, options));
}

/** The first of `secrets` one of the checked signatures was made with, or WebhookSignatureMismatchError. */
export function matchWebhookSignature(secrets: readonly string[], body: WebhookBody, checked: CheckedWebhookHeaders): VerifiedWebhook {
  const { msgId, timestampSeconds, signatures } = checked;
  for (let i = 0; i < secrets.length; i++) {
    const expected = webhookSignatureBytes(webhookSecretKey(secrets[i]), msgId, timestampSeconds, body);
    // Lengths are public (32 bytes for v1); timingSafeEqual needs equal lengths.
    if (signatures.some((sig) => sig.length === expected.length && timingSafeEqual(sig, expected))) {
      return { msgId, timestamp: new Date(timestampSeconds * 1000), secretIndex: i };
    }
  }
  throw new WebhookSignatureMismatchError();
}

/** The decoded `v1,` signatures of a header; other versions (e.g. `v1a` asymmetric) are ignored. */
function parseSignatures(value: string | undefined): Buffer[] {
  if (!value) return [];
  const out: Buffer[] = [];
  for (const entry of value.split(' ')) {
    if (out.length >= MAX_SIGNATURES_CHECKED) break;
    const comma = entry.indexOf(',');
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue;
    const encoded = entry.slice(comma + 1);
    if (BASE64.test(encoded) && encoded.length > 0) out.push(Buffer.from(encoded, 'base64'));
  }
  return out;
}

/** One header, looked up case-insensitively; a repeated header counts as malformed. */
function header(headers: IncomingWebhookHeaders, name: string): string | undefined {
  if (headers === null || typeof headers !== 'object') return undefined;
  let found: string | readonly string[] | undefined = headers[name];
  if (found === undefined) {
    for (const [k, v] of Object.entries(headers)) {
      if (k.toLowerCase() === name) {
        found = v;
        break;
      }
    }
  }
  if (Array.isArray(found)) return found.length === 1 ? (found[0] as string) : undefined;
  return typeof found === 'string' ? found : undefined;
}

function assertMsgId(msgId: string): void {
  if (typeof msgId !== 'string' || !MSG_ID.test(msgId)) {
    throw new WebhookSecretValidationError('msgId must be 1..256 printable ASCII characters without spaces', 'msgId');
  }
}

function assertBody(body: WebhookBody): void {
  if (typeof body !== 'string' && !(body instanceof Uint8Array)) {
    throw new WebhookSecretValidationError('The body must be the raw payload: a string or bytes', 'body');
  }
}
