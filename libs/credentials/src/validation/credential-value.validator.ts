import { X509Certificate, createPrivateKey } from 'node:crypto';
import { hasControlCharacter, isWellFormedUnicode } from '@app/common';
import { CredentialType, type CredentialTypeInput } from '../credential-type';
import { CredentialValidationError } from '../errors/credential-errors';
import { checkedType } from '../internal/guards';

/** Key Vault's value limit, applied to every value store so a credential can always move between them. */
export const MAX_VALUE_BYTES = 25 * 1024;
/** Standard Webhooks / Svix: at least 24 random bytes. */
export const MIN_WEBHOOK_SECRET_BYTES = 24;

/** Public facts read from a client certificate (certificates are not secret). */
export interface CertificateInfo {
  subject: string;
  issuer: string;
  serialNumber: string;
  /** SHA-256 fingerprint, colon-separated hex. */
  fingerprint256: string;
  validFrom: Date;
  validTo: Date;
}

export interface ValidatedValue {
  /** Expiry read from the value itself (certificates), else undefined. */
  expiresAt?: Date;
  certificate?: CertificateInfo;
}

// Messages below never include the value (or any part of it): they may end up in logs and HTTP bodies.

const SINGLE_LINE_TYPES = new Set([
  CredentialType.OAUTH_ACCESS_TOKEN,
  CredentialType.OAUTH_REFRESH_TOKEN,
  CredentialType.API_KEY,
  CredentialType.BASIC_AUTH_USERNAME,
  CredentialType.WEBHOOK_SECRET,
]);

/**
 * Validates a value for its type (the member or its string value, `'api_key'`). Throws CredentialValidationError
 * (field `value`) naming what is wrong, never echoing the value; a type that is none: field `type`.
 */
export function validateCredentialValue(
  type: CredentialTypeInput,
  value: unknown,
  now: Date = new Date(),
  minWebhookSecretBytes = MIN_WEBHOOK_SECRET_BYTES,
): ValidatedValue {
  return validateValueOfType(checkedType(type), value, now, minWebhookSecretBytes);
}

/** The same for a type the lib already checked (the writer's): the public entry above checks it. */
export function validateValueOfType(type: CredentialType, value: unknown, now: Date, minWebhookSecretBytes: number): ValidatedValue {
  if (typeof value !== 'string') {
    throw new CredentialValidationError('value must be a string', 'value');
  }
  if (value.trim().length === 0) {
    throw new CredentialValidationError('value must not be empty', 'value');
  }
  // A lone surrogate cannot be encoded as UTF-8: the vault or database would store U+FFFD instead,
  // and a later read would return another value than the one acknowledged.
  if (!isWellFormedUnicode(value)) {
    throw new CredentialValidationError('value must be well-formed Unicode (it contains a lone surrogate)', 'value');
  }
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > MAX_VALUE_BYTES) {
    throw new CredentialValidationError(`value is ${bytes} bytes; the limit is ${MAX_VALUE_BYTES} bytes (25 KB)`, 'value');
  }
  if (SINGLE_LINE_TYPES.has(type)) {
    if (value !== value.trim()) {
      throw new CredentialValidationError(`a ${type} must not have leading or trailing whitespace`, 'value');
    }
    if (hasControlCharacter(value)) {
      throw new CredentialValidationError(`a ${type} must be a single line without control characters`, 'value');
    }
  }
  switch (type) {
    case CredentialType.BASIC_AUTH_USERNAME:
      if (value.includes(':')) {
        throw new CredentialValidationError('a basic-auth username must not contain ":" (RFC 7617)', 'value');
      }
      return {};
    case CredentialType.CLIENT_CERTIFICATE:
      return validateCertificate(value, now);
    case CredentialType.CLIENT_PRIVATE_KEY:
      validatePrivateKey(value);
      return {};
    case CredentialType.WEBHOOK_SECRET:
      validateWebhookSecret(value, minWebhookSecretBytes);
      return {};
    default:
      return {};
  }
}

function validateCertificate(pem: string, now: Date): ValidatedValue {
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new CredentialValidationError('a client certificate must be PEM (-----BEGIN CERTIFICATE-----)', 'value');
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new CredentialValidationError(
      'the certificate PEM also contains a private key; store the key separately as client_private_key',
      'value',
    );
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    throw new CredentialValidationError('the certificate PEM could not be parsed as X.509', 'value');
  }
  const validTo = new Date(cert.validTo);
  const validFrom = new Date(cert.validFrom);
  if (Number.isNaN(validTo.getTime())) {
    throw new CredentialValidationError('the certificate has no readable expiry (notAfter)', 'value');
  }
  if (validTo.getTime() <= now.getTime()) {
    throw new CredentialValidationError(`the certificate expired on ${validTo.toISOString()}`, 'value');
  }
  return {
    expiresAt: validTo,
    certificate: {
      subject: cert.subject,
      issuer: cert.issuer,
      serialNumber: cert.serialNumber,
      fingerprint256: cert.fingerprint256,
      validFrom,
      validTo,
    },
  };
}

function validatePrivateKey(pem: string): void {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new CredentialValidationError('a client private key must be PEM (-----BEGIN ... PRIVATE KEY-----)', 'value');
  }
  if (pem.includes('ENCRYPTED PRIVATE KEY') || pem.includes('Proc-Type: 4,ENCRYPTED')) {
    throw new CredentialValidationError('encrypted private keys are not supported; store the key unencrypted', 'value');
  }
  try {
    createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new CredentialValidationError('the private key PEM could not be parsed', 'value');
  }
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const HEX = /^[0-9a-fA-F]+$/;

/**
 * Entropy of a webhook secret, in bytes. `whsec_<base64>` and plain base64/hex are decoded; any other
 * string is estimated from its length and the character classes it uses (a crude upper bound, so we
 * also require some character variety to reject `aaaa...`).
 */
export function webhookSecretEntropyBytes(value: string): number {
  if (value.startsWith('whsec_')) {
    const body = value.slice('whsec_'.length);
    if (!(BASE64.test(body) || BASE64URL.test(body)) || body.length === 0) return 0;
    return Buffer.from(body, BASE64URL.test(body) ? 'base64url' : 'base64').length;
  }
  const distinct = new Set(value).size;
  if (distinct < Math.min(10, Math.ceil(value.length / 2))) return 0;
  if (HEX.test(value)) return Math.floor(value.length / 2);
  let alphabet = 0;
  if (/[a-z]/.test(value)) alphabet += 26;
  if (/[A-Z]/.test(value)) alphabet += 26;
  if (/[0-9]/.test(value)) alphabet += 10;
  if (/[^A-Za-z0-9]/.test(value)) alphabet += 33;
  return Math.floor((value.length * Math.log2(Math.max(alphabet, 2))) / 8);
}

function validateWebhookSecret(value: string, minBytes: number): void {
  if (value.startsWith('whsec_')) {
    const body = value.slice('whsec_'.length);
    if (body.length === 0 || !(BASE64.test(body) || BASE64URL.test(body))) {
      throw new CredentialValidationError('a whsec_ webhook secret must be followed by base64', 'value');
    }
  }
  const bytes = webhookSecretEntropyBytes(value);
  if (bytes < minBytes) {
    throw new CredentialValidationError(
      `a webhook secret needs at least ${minBytes} bytes of entropy (e.g. whsec_ + base64 of ${minBytes} random bytes); this one has about ${bytes}`,
      'value',
    );
  }
}
