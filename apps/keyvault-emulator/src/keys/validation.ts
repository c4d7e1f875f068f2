import { errors } from '../errors';
import { definesKeyRelease } from '../http/api-version';
import { assertTags, parseAttributes } from '../objects/validation';
import { ENCRYPTION_ALGORITHMS, EncryptionAlgorithm, KeyShape, RSA_KEY_SIZES, SIGNATURE_ALGORITHMS, SignatureAlgorithm } from './crypto';
import { CURVES, Curve } from './ecdsa';
import { isRsa, KEY_OPERATIONS, KEY_TYPES, KeyOperation, KeyType, RotationPolicyRecord } from './model';
import { durationDays, ISO_DURATION } from './durations';
import { CreateKeyInput, UpdateKeyInput } from './store';

/** Azure's defaults when `key_ops` is omitted (as recorded from the service). */
const DEFAULT_KEY_OPS: Record<'RSA' | 'EC', KeyOperation[]> = {
  RSA: ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'],
  EC: ['sign', 'verify'],
};

const has = <T extends string>(list: readonly T[], v: unknown): v is T => typeof v === 'string' && (list as readonly string[]).includes(v);

function parseKeyOps(raw: unknown): KeyOperation[] | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw)) throw errors.badParameter('The property "key_ops" must be an array of key operations.');
  for (const o of raw) {
    if (!has(KEY_OPERATIONS, o)) throw errors.badParameter(`Invalid key operation: ${String(o).slice(0, 32)}. Valid: ${KEY_OPERATIONS.join(', ')}.`);
  }
  return raw as KeyOperation[];
}

/** The body of POST /keys/{name}/create. */
export function parseCreateKey(body: Record<string, unknown>): { input: CreateKeyInput; shape: KeyShape } {
  const { kty, key_size: keySize, crv, public_exponent: publicExponent, key_ops: keyOps, tags, attributes } = body;
  if (kty === undefined || kty === null) throw errors.badParameter('The property "kty" is required.');
  if (!has(KEY_TYPES, kty)) {
    throw errors.badParameter(`Key type ${String(kty).slice(0, 16)} is not supported by this vault; use one of ${KEY_TYPES.join(', ')}.`);
  }
  assertTags(tags, 'key');
  const shape: KeyShape = { kty };
  if (isRsa(kty)) {
    if (keySize !== undefined && keySize !== null && !RSA_KEY_SIZES.includes(keySize as 2048)) {
      throw errors.badParameter(`Invalid key size ${String(keySize).slice(0, 16)} for an RSA key: use ${RSA_KEY_SIZES.join(', ')}.`);
    }
    shape.keySize = (keySize as number | undefined) ?? 2048;
    if (publicExponent !== undefined && publicExponent !== null) {
      const e = publicExponent as number;
      if (!Number.isInteger(e) || e < 3 || e % 2 === 0 || e > 0x7fffffff) throw errors.badParameter('The property "public_exponent" must be an odd integer >= 3.');
      shape.publicExponent = e;
    }
  } else {
    const curve = crv ?? 'P-256';
    if (!has(Object.keys(CURVES) as Curve['crv'][], curve)) {
      throw errors.badParameter(`Invalid curve ${String(curve).slice(0, 16)}: use one of ${Object.keys(CURVES).join(', ')}.`);
    }
    shape.crv = curve;
  }
  const family: 'RSA' | 'EC' = isRsa(kty) ? 'RSA' : 'EC';
  return {
    shape,
    input: { kty: kty as KeyType, keyOps: parseKeyOps(keyOps) ?? DEFAULT_KEY_OPS[family], tags, attributes: parseAttributes(attributes) },
  };
}

/**
 * Secure key release (an exportable key with a release policy) is not implemented, and the service never creates a
 * non-exportable key for a request that asked for one: its answers, 400 BadParameter, are recorded for an exportable key
 * without a policy (AKV.SKR.1004) and a policy on a non-exportable key (AKV.SKR.1005) (azure-sdk-for-js keyvault-keys
 * recordings, api-version 7.4-preview.1); for both, and for the exportable attribute before 7.3, the emulator answers as
 * a vault without secure key release does (AKV.SKR.1001, as azure-sdk-for-net's PartiallyDeployedAttributeTests quote it).
 */
export function assertNoKeyRelease(body: Record<string, unknown>, apiVersion: string): void {
  const attributes = body.attributes as Record<string, unknown> | null | undefined;
  const exportable = attributes?.exportable === true;
  const unsupported = () => errors.badParameter("AKV.SKR.1001: The exportable attribute is only supported with premium vaults and API version >= '7.3-preview'.");
  if (!definesKeyRelease(apiVersion)) {
    if (exportable) throw unsupported();
    return;
  }
  const policy = body.release_policy !== undefined && body.release_policy !== null;
  if (exportable && !policy) throw errors.badParameter('AKV.SKR.1004: Exportable keys must have release policy.');
  if (!exportable && policy) throw errors.badParameter('AKV.SKR.1005: Non-exportable keys must not have release policy.');
  if (exportable) throw unsupported();
}

/** The body of PATCH /keys/{name}/{version}. */
export function parseUpdateKey(body: Record<string, unknown>): UpdateKeyInput {
  const { key_ops: keyOps, tags, attributes } = body;
  assertTags(tags, 'key');
  return { keyOps: parseKeyOps(keyOps), tags, attributes: parseAttributes(attributes) };
}

/** A required base64url property of a crypto request (the SDKs send it unpadded). */
export function base64urlProperty(body: Record<string, unknown>, property: string): Buffer {
  const v = body[property];
  if (typeof v !== 'string') throw errors.badParameter(`The property "${property}" is required and must be a base64url string.`);
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(v)) throw errors.badParameter(`The property "${property}" is not valid base64url.`);
  return Buffer.from(v, 'base64url');
}

export function signatureAlgorithm(body: Record<string, unknown>): SignatureAlgorithm {
  if (!has(Object.keys(SIGNATURE_ALGORITHMS) as SignatureAlgorithm[], body.alg)) {
    throw errors.badParameter(`Invalid signature algorithm ${String(body.alg).slice(0, 16)}: use one of ${Object.keys(SIGNATURE_ALGORITHMS).join(', ')}.`);
  }
  return body.alg;
}

export function encryptionAlgorithm(body: Record<string, unknown>): EncryptionAlgorithm {
  if (!has(Object.keys(ENCRYPTION_ALGORITHMS) as EncryptionAlgorithm[], body.alg)) {
    throw errors.badParameter(`Invalid encryption algorithm ${String(body.alg).slice(0, 16)}: use one of ${Object.keys(ENCRYPTION_ALGORITHMS).join(', ')}.`);
  }
  return body.alg;
}

/**
 * The body of PUT /keys/{name}/rotationpolicy: lifetime actions (Rotate / Notify, one ISO 8601 trigger each) and an
 * expiry, with Key Vault's limits (how-to-configure-key-rotation; the REST spec): a new version's expiry at least
 * 28 days; a trigger at least 7 days, and a rotation at least 7 days after creation and 7 days before expiry; `timeAfterCreate`
 * only for Rotate; a trigger before expiry only with an expiry.
 */
export function parseRotationPolicy(body: Record<string, unknown>): Pick<RotationPolicyRecord, 'lifetimeActions' | 'expiryTime'> {
  const bad = (what: string) => errors.badParameter(`Invalid rotation policy: ${what}.`);
  const { lifetimeActions, attributes } = body;
  if (lifetimeActions !== undefined && !Array.isArray(lifetimeActions)) throw bad('"lifetimeActions" must be an array');
  const expiryTime = (attributes as { expiryTime?: unknown } | undefined)?.expiryTime;
  if (expiryTime !== undefined && expiryTime !== null && (typeof expiryTime !== 'string' || !ISO_DURATION.test(expiryTime))) {
    throw bad('"attributes.expiryTime" must be an ISO 8601 duration');
  }
  const expiryDays = typeof expiryTime === 'string' ? durationDays(expiryTime)! : undefined;
  if (expiryDays !== undefined && expiryDays < 28) throw bad('"attributes.expiryTime" must be at least 28 days (P28D)');
  const actions: RotationPolicyRecord['lifetimeActions'] = [];
  for (const raw of (lifetimeActions as unknown[] | undefined) ?? []) {
    const a = (raw ?? {}) as { trigger?: Record<string, unknown>; action?: { type?: unknown } };
    const type = typeof a.action?.type === 'string' ? a.action.type.toLowerCase() : '';
    if (type !== 'rotate' && type !== 'notify') throw bad('an action type must be Rotate or Notify');
    const { timeAfterCreate, timeBeforeExpiry } = a.trigger ?? {};
    const triggers = [timeAfterCreate, timeBeforeExpiry].filter((t) => t !== undefined && t !== null);
    if (triggers.length !== 1 || !triggers.every((t) => typeof t === 'string' && ISO_DURATION.test(t))) {
      throw bad('each action needs exactly one ISO 8601 duration, timeAfterCreate or timeBeforeExpiry');
    }
    const days = durationDays(triggers[0] as string)!;
    if (days < 7) throw bad('a trigger must be at least 7 days (P7D)');
    if (timeAfterCreate && type === 'notify') throw bad('a Notify action takes timeBeforeExpiry only');
    if (timeAfterCreate && expiryDays !== undefined && expiryDays - days < 7) throw bad('timeAfterCreate must come at least 7 days before "attributes.expiryTime"');
    if (timeBeforeExpiry) {
      if (expiryDays === undefined) throw bad('timeBeforeExpiry needs "attributes.expiryTime"');
      if (expiryDays - days < 7) throw bad('timeBeforeExpiry must leave at least 7 days after creation');
    }
    const trigger = timeAfterCreate ? { timeAfterCreate: timeAfterCreate as string } : { timeBeforeExpiry: timeBeforeExpiry as string };
    actions.push({ trigger, action: { type: type === 'rotate' ? 'Rotate' : 'Notify' } });
  }
  return { lifetimeActions: actions, ...(typeof expiryTime === 'string' ? { expiryTime } : {}) };
}
