import { hasControlCharacter, isWellFormedUnicode, TAG_KEY_PATTERN, type OperationContext } from '@app/common';
import {
  DIGEST_BYTES,
  VAULT_EC_CURVES,
  VAULT_ENCRYPTION_ALGORITHMS,
  VAULT_KEY_OPERATIONS,
  VAULT_RSA_KEY_SIZES,
  VAULT_SIGNATURE_ALGORITHMS,
  type VaultKey,
} from '@app/key-vault';
import { KeysError, KeysErrorCode } from '../errors/keys.errors';
import {
  KEY_NAME_PATTERN,
  type CreateKeyRequest,
  type EncryptionAlgorithm,
  type KeyOperation,
  type KeyPageRequest,
  type KeySelector,
  type SignatureAlgorithm,
} from '../keys.types';

/*
 * The checks KeysService runs before any vault call: a refused request costs no vault transaction,
 * and no message repeats the request's values (field names and allowed values only).
 */

const MAX_TAGS = 15;
const MAX_TAG_VALUE = 256;
/** The last instant the vault's wire format holds (2^31 - 1 seconds after the epoch). */
const MAX_VAULT_DATE_MS = 2_147_483_647_000;
const MIN_VAULT_DATE_MS = -2_147_483_648_000;
/** The longest RSA block of a vault key (RSA-4096), in bytes. */
const MAX_RSA_BLOCK_BYTES = 512;
const ES_CURVE: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

export function invalid(field: string, message: string): KeysError {
  return new KeysError(KeysErrorCode.KEYS_VALIDATION, message, field);
}

/**
 * The caller's context as the audit takes it (tenant 1-128 characters, actor id 1-256). Checked before any vault
 * call: a key was created (or deleted) in the vault first and the call then failed at its audit row, unaudited.
 */
export function checkContext(ctx: OperationContext): void {
  if (!ctx || typeof ctx.tenantId !== 'string' || ctx.tenantId.length === 0 || ctx.tenantId.length > 128) {
    throw invalid('ctx.tenantId', 'ctx.tenantId must be a non-empty string of at most 128 characters');
  }
  if (!ctx.actor || typeof ctx.actor.id !== 'string' || ctx.actor.id.length === 0 || ctx.actor.id.length > 256) {
    throw invalid('ctx.actor', 'ctx.actor.id must be a non-empty string of at most 256 characters');
  }
}

export function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !KEY_NAME_PATTERN.test(name)) {
    throw invalid('name', 'a key name is 1-63 letters, digits and -, starting with a letter or digit');
  }
}

export function checkVersion(version: unknown): void {
  if (typeof version !== 'string' || !/^[0-9a-zA-Z]{1,64}$/.test(version)) throw invalid('version', 'a key version is 1-64 letters or digits');
}

export function checkSelector<T extends KeySelector>(request: T): T {
  if (request === null || typeof request !== 'object') throw invalid('(request)', 'the request must be an object');
  checkName(request.name);
  if (request.version !== undefined) checkVersion(request.version);
  return request;
}

/** A create request's checks; answers the key operations the key gets and its dates in whole seconds (`checkDates`). */
export function checkCreateKey(req: CreateKeyRequest): { keyOps: KeyOperation[] } & KeyDates {
  checkName(req.name);
  if (req.type !== 'RSA' && req.type !== 'EC') throw invalid('type', "type must be 'RSA' or 'EC'");
  if (req.type === 'RSA') {
    if (req.curve !== undefined) throw invalid('curve', 'an RSA key has no curve');
    if (req.size !== undefined && !VAULT_RSA_KEY_SIZES.includes(req.size)) throw invalid('size', `size must be one of ${VAULT_RSA_KEY_SIZES.join(', ')}`);
  } else {
    if (req.size !== undefined) throw invalid('size', 'an EC key has no size (choose a curve)');
    if (req.curve !== undefined && !VAULT_EC_CURVES.includes(req.curve)) throw invalid('curve', `curve must be one of ${VAULT_EC_CURVES.join(', ')}`);
  }
  const keyOps = req.keyOps ?? (req.type === 'RSA' ? [...VAULT_KEY_OPERATIONS] : (['sign', 'verify'] as KeyOperation[]));
  checkKeyOps(keyOps, req.type);
  checkTags(req.tags);
  const dates = checkDates(req.expiresOn, req.notBefore);
  checkEnabled(req.enabled);
  return { keyOps, ...dates };
}

export function checkEnabled(enabled: unknown): void {
  if (enabled !== undefined && typeof enabled !== 'boolean') throw invalid('enabled', 'enabled must be a boolean');
}

export function checkSignature(algorithm: SignatureAlgorithm, digest: Uint8Array, field: string): void {
  if (!VAULT_SIGNATURE_ALGORITHMS.includes(algorithm)) {
    throw new KeysError(KeysErrorCode.ALGORITHM_NOT_ALLOWED, `algorithm must be one of ${VAULT_SIGNATURE_ALGORITHMS.join(', ')}`, 'algorithm');
  }
  if (!(digest instanceof Uint8Array) || digest.length !== DIGEST_BYTES[algorithm]) {
    throw invalid(field, `${algorithm} signs a ${DIGEST_BYTES[algorithm]}-byte digest (SHA-${DIGEST_BYTES[algorithm] * 8} of the data)`);
  }
}

export function checkSignatureBytes(signature: unknown): void {
  if (!(signature instanceof Uint8Array) || signature.length === 0 || signature.length > 1024) {
    throw invalid('signature', 'signature must be 1..1024 bytes');
  }
}

export function checkEncryption(algorithm: EncryptionAlgorithm, bytes: Uint8Array, field: string, allowRsa1_5: boolean): void {
  if (!VAULT_ENCRYPTION_ALGORITHMS.includes(algorithm)) {
    throw new KeysError(KeysErrorCode.ALGORITHM_NOT_ALLOWED, 'algorithm must be RSA-OAEP or RSA-OAEP-256', 'algorithm');
  }
  if (algorithm === 'RSA1_5' && !allowRsa1_5) {
    throw new KeysError(KeysErrorCode.ALGORITHM_NOT_ALLOWED, 'RSA1_5 is refused (PKCS#1 v1.5 padding); use RSA-OAEP-256, or enable the allowRsa1_5 option', 'algorithm');
  }
  // An RSA-4096 block: no plaintext or ciphertext of a vault RSA key is longer (the HTTP DTOs say the same).
  if (!(bytes instanceof Uint8Array) || bytes.length === 0 || bytes.length > MAX_RSA_BLOCK_BYTES) throw invalid(field, `${field} must be 1..${MAX_RSA_BLOCK_BYTES} bytes`);
}

/**
 * The byte length of an RSA modulus given as its JWK `n` (base64url, big-endian; a leading zero byte is not part of
 * it), or undefined when there is none — a key whose public part has no modulus is sized by the vault, not refused here.
 */
export function rsaModulusBytes(n: string | undefined): number | undefined {
  if (typeof n !== 'string' || n.length === 0) return undefined;
  const bytes = Buffer.from(n, 'base64url');
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  return bytes.length - start || undefined;
}

/** Bytes of padding one RSA block spends (RFC 8017): OAEP 2·hLen + 2 (SHA-1, SHA-256), PKCS#1 v1.5 11. */
const RSA_PADDING_BYTES: Record<EncryptionAlgorithm, number> = { 'RSA-OAEP': 42, 'RSA-OAEP-256': 66, RSA1_5: 11 };

/**
 * What an encrypt or a wrap gives the key: at most one RSA block of its modulus, less the padding (RSA-2048 and
 * RSA-OAEP-256: 190 bytes). Key Vault encrypts a single block and answers a longer one 400 BadParameter, naming no limit.
 */
export function checkRsaBlock(algorithm: EncryptionAlgorithm, bytes: Uint8Array, field: string, modulusBytes: number | undefined): void {
  // No modulus to size it by (a key the vault answered without `n`): the vault's own check decides.
  if (modulusBytes === undefined) return;
  const max = modulusBytes - RSA_PADDING_BYTES[algorithm];
  if (bytes.length > max) throw invalid(field, `${field} must be at most ${max} bytes for ${algorithm} with this key (RSA-${modulusBytes * 8})`);
}

export function checkKeyOps(keyOps: unknown, type?: 'RSA' | 'EC'): void {
  if (!Array.isArray(keyOps) || keyOps.length === 0 || keyOps.some((op) => !(VAULT_KEY_OPERATIONS as readonly unknown[]).includes(op))) {
    throw invalid('keyOps', `keyOps must be a non-empty list of ${VAULT_KEY_OPERATIONS.join(', ')}`);
  }
  // The vault stores the list as sent, and every read after would answer it so.
  if (new Set(keyOps).size !== keyOps.length) throw invalid('keyOps', 'keyOps must name each operation once');
  if (type === 'EC' && keyOps.some((op) => op !== 'sign' && op !== 'verify')) {
    throw new KeysError(KeysErrorCode.KEY_TYPE_MISMATCH, 'an EC key can only sign and verify', 'keyOps');
  }
}

/**
 * A key's tags; `filter` for a list's tag filter, which writes nothing and so also takes a control character: it
 * still finds a key tagged so before the rule (or in the vault directly), to fix it.
 */
export function checkTags(tags: unknown, use: 'stored' | 'filter' = 'stored'): void {
  if (tags === undefined) return;
  if (tags === null || typeof tags !== 'object' || Array.isArray(tags)) throw invalid('tags', 'tags must be an object of string values');
  const entries = Object.entries(tags as Record<string, unknown>);
  if (entries.length > MAX_TAGS) throw invalid('tags', `at most ${MAX_TAGS} tags are allowed`);
  entries.forEach(([k, v], i) => {
    if (!TAG_KEY_PATTERN.test(k)) throw invalid('tags', `the key of tag #${i + 1} must match ${TAG_KEY_PATTERN.source}`);
    // One line of text, as a credential's tag value: a line break or ESC in a tag shown by a portal or CLI can forge output.
    if (typeof v !== 'string' || v.length > MAX_TAG_VALUE || !isWellFormedUnicode(v) || (use === 'stored' && hasControlCharacter(v))) {
      throw invalid('tags', `the value of tag #${i + 1} must be well-formed text of at most ${MAX_TAG_VALUE} characters${use === 'stored' ? ' without control characters' : ''}`);
    }
  });
}

/** A key version's validity window as the vault stores it: whole seconds. */
export interface KeyDates {
  expiresOn?: Date;
  notBefore?: Date;
}

/**
 * The dates checked, and rounded to the whole seconds the vault stores (`nbf` / `exp` are NumericDate seconds; the
 * Azure SDK would cut a fraction off, `getTime() / 1000 | 0`, moving `notBefore` up to 999 ms earlier): always
 * inward — `notBefore` up, `expiresOn` down — so the key is never usable outside the window asked for.
 */
export function checkDates(expiresOn: unknown, notBefore: unknown): KeyDates {
  for (const [field, d] of [['expiresOn', expiresOn], ['notBefore', notBefore]] as const) {
    if (d !== undefined && (!(d instanceof Date) || Number.isNaN(d.getTime()))) throw invalid(field, `${field} must be a valid Date`);
    // The Azure SDK sends dates as 32-bit seconds (`getTime() / 1000 | 0`): a later one wraps to 1901..1970, an
    // earlier one to 1970..2038 (an expiry in 1897 would become one in 2033).
    if (d instanceof Date && (d.getTime() > MAX_VAULT_DATE_MS || d.getTime() < MIN_VAULT_DATE_MS)) {
      throw invalid(field, `${field} must be from 1901-12-13T20:45:52Z to 2038-01-19T03:14:07Z`);
    }
  }
  const dates: KeyDates = {};
  if (expiresOn instanceof Date) dates.expiresOn = new Date(Math.floor(expiresOn.getTime() / 1000) * 1000);
  if (notBefore instanceof Date) dates.notBefore = new Date(Math.ceil(notBefore.getTime() / 1000) * 1000);
  if (dates.expiresOn && dates.notBefore && dates.notBefore.getTime() >= dates.expiresOn.getTime()) {
    throw invalid('notBefore', 'notBefore must be before expiresOn (in whole seconds: notBefore is rounded up, expiresOn down)');
  }
  return dates;
}

/** The page size a request asks for (the default when it asks none). */
export function checkPageSize(request: KeyPageRequest, defaultPageSize: number): number {
  const size = request?.maxPageSize ?? defaultPageSize;
  if (!Number.isInteger(size) || size < 1 || size > 25) throw invalid('maxPageSize', 'maxPageSize must be an integer from 1 to 25');
  return size;
}

/** The operations a key's `notBefore` / `expiresOn` window applies to (Key Vault's "date-time controlled operations"). */
const DATE_CONTROLLED: ReadonlySet<KeyOperation> = new Set<KeyOperation>(['encrypt', 'wrapKey', 'sign']);

/**
 * A key version checked for one use: enabled, within its dates (encrypt, wrap and sign only), `key_ops` allowing the operation, and
 * an algorithm that fits its type (and curve).
 */
export function checkUsable(key: VaultKey, op: KeyOperation, algorithm: SignatureAlgorithm | EncryptionAlgorithm, now: number): void {
  const { properties, publicKey } = key;
  if (!properties.enabled) throw new KeysError(KeysErrorCode.KEY_NOT_USABLE, 'The key version is disabled');
  // As Key Vault does: outside its nbf/exp window a key still decrypts, unwraps and verifies (to recover
  // data made while it was valid, or to test it before), and refuses only to make new ciphertext or signatures.
  if (DATE_CONTROLLED.has(op)) {
    if (properties.expiresOn && properties.expiresOn.getTime() <= now) throw new KeysError(KeysErrorCode.KEY_NOT_USABLE, 'The key version has expired');
    if (properties.notBefore && properties.notBefore.getTime() > now) throw new KeysError(KeysErrorCode.KEY_NOT_USABLE, 'The key version is not valid yet');
  }
  if (!properties.keyOps.includes(op)) throw new KeysError(KeysErrorCode.KEY_OPERATION_NOT_PERMITTED, `The key's key_ops do not include ${op}`);
  const needsRsa = algorithm.startsWith('RS') || algorithm.startsWith('PS') || algorithm.startsWith('RSA');
  if (needsRsa !== (publicKey.kty === 'RSA')) {
    throw new KeysError(KeysErrorCode.KEY_TYPE_MISMATCH, `${algorithm} needs an ${needsRsa ? 'RSA' : 'EC'} key; this key is ${publicKey.kty}`, 'algorithm');
  }
  if (ES_CURVE[algorithm] && publicKey.crv !== ES_CURVE[algorithm]) {
    throw new KeysError(KeysErrorCode.KEY_TYPE_MISMATCH, `${algorithm} needs a ${ES_CURVE[algorithm]} key; this key is ${publicKey.crv ?? 'another curve'}`, 'algorithm');
  }
}
