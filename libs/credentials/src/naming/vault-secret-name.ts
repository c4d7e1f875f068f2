import { createHash } from 'node:crypto';
import { CREDENTIAL_TYPE_NAME_CODES, type CredentialTypeInput } from '../credential-type';
import { checkedType } from '../internal/guards';
import { CredentialGenerationsExhaustedError } from '../errors/credential-errors';

/** Azure Key Vault secret names: 1–127 of `0-9a-zA-Z-`, compared case-insensitively. */
export const KEY_VAULT_NAME_PATTERN = /^[0-9a-zA-Z-]{1,127}$/;
export const KEY_VAULT_NAME_MAX_LENGTH = 127;
/** A name prefix: lowercase letters and digits, starting with a letter (no dash keeps the layout parseable). */
export const NAME_PREFIX_PATTERN = /^[a-z][a-z0-9]{0,15}$/;

/*
 * Encoding (documented in docs, tested by a property test):
 *
 *   credential secret   <prefix>--<enc(tenant)>--<enc(integration)>--<typeCode>--<enc(connection)>--g<generation>
 *   hashed fallback     <prefix>-h-<sha256hex(JSON [tenant, integration, type, connection])>--g<generation>
 *   tenant data key     <prefix>-k--<enc(tenant)>          (fallback <prefix>-kh-<sha256hex(tenant)>)
 *
 * enc() is a prefix-free code over [a-z0-9-], so the output is lowercase (Key Vault ignores case)
 * and decodable, hence injective:
 *   a-z 0-9  -> itself
 *   A-Z      -> "-" + lowercase letter        (case survives a case-insensitive vault)
 *   "-"      -> "-0"    "."  -> "-1"    "_" -> "-2"    ":" -> "-3"    "@" -> "-4"
 * and "--" never occurs inside enc(x) (a "-" is always followed by a letter or digit), so "--"
 * separates fields unambiguously. Names that would exceed 127 characters use the hashed form
 * (256-bit SHA-256, collision resistant); its "-h-" / "-kh-" markers cannot start an encoded name,
 * which always has "--" right after the prefix.
 */

const ESCAPES: Record<string, string> = { '-': '-0', '.': '-1', _: '-2', ':': '-3', '@': '-4' };
const UNESCAPES: Record<string, string> = Object.fromEntries(Object.entries(ESCAPES).map(([k, v]) => [v[1], k]));

export function encodeNameComponent(id: string): string {
  let out = '';
  for (const ch of id) {
    if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) out += ch;
    else if (ch >= 'A' && ch <= 'Z') out += '-' + ch.toLowerCase();
    else if (ESCAPES[ch]) out += ESCAPES[ch];
    else throw new Error(`character not allowed in an identifier (code ${ch.codePointAt(0)})`);
  }
  return out;
}

export function decodeNameComponent(encoded: string): string {
  let out = '';
  for (let i = 0; i < encoded.length; i++) {
    const ch = encoded[i];
    if (ch !== '-') {
      out += ch;
      continue;
    }
    const next = encoded[++i];
    if (next === undefined) throw new Error('dangling escape');
    if (next >= 'a' && next <= 'z') out += next.toUpperCase();
    else if (UNESCAPES[next]) out += UNESCAPES[next];
    else throw new Error('invalid escape');
  }
  return out;
}

export interface CredentialNameParts {
  tenantId: string;
  integrationId: string;
  /** The member or its string value (`'api_key'`); a type that is none: VALIDATION (field `type`). */
  type: CredentialTypeInput;
  connectionId: string;
}

function sha256Hex(input: string): string {
  return createHash('sha256').update(input, 'utf8').digest('hex');
}

/**
 * The generation-independent part of a credential's secret name. Deterministic; distinct inputs
 * give distinct bases (encoded form) or, past 127 characters, SHA-256-distinct ones.
 */
export function credentialSecretBaseName(parts: CredentialNameParts, prefix = 'cv'): string {
  // Checked, not looked up: an inherited key ('constructor') would find a code.
  const code = CREDENTIAL_TYPE_NAME_CODES[checkedType(parts.type)];
  const encoded = [prefix, encodeNameComponent(parts.tenantId), encodeNameComponent(parts.integrationId), code, encodeNameComponent(parts.connectionId)].join('--');
  // Reserve room for the longest generation suffix we allow ("--g" + 6 digits).
  if (encoded.length + GENERATION_SUFFIX_RESERVE <= KEY_VAULT_NAME_MAX_LENGTH) return encoded;
  const digest = sha256Hex(JSON.stringify([parts.tenantId, parts.integrationId, parts.type, parts.connectionId]));
  return `${prefix}-h-${digest}`;
}

/** "--g" + up to 6 digits. */
const GENERATION_SUFFIX_RESERVE = 9;
export const MAX_GENERATION = 999_999;

/** Full secret name of one generation of a credential (generation 0, 1, 2, ...). */
export function credentialSecretName(parts: CredentialNameParts, generation: number, prefix = 'cv'): string {
  if (!Number.isInteger(generation) || generation < 0) throw new Error(`generation must be an integer in 0..${MAX_GENERATION}`);
  // A slot can reach it (rollover after rollover): typed, so the host answers it with its code, not a bare 500.
  if (generation > MAX_GENERATION) throw new CredentialGenerationsExhaustedError(generation, MAX_GENERATION);
  return `${credentialSecretBaseName(parts, prefix)}--g${generation}`;
}

/** The generation a credential secret's name ends with (`--g<generation>`, hashed form too); undefined for another name. */
export function credentialSecretGeneration(name: string): number | undefined {
  const m = /--g(0|[1-9][0-9]{0,5})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Name of the Key Vault secret holding a tenant's envelope data key. */
export function dataKeySecretName(tenantId: string, prefix = 'cv'): string {
  const encoded = `${prefix}-k--${encodeNameComponent(tenantId)}`;
  if (encoded.length <= KEY_VAULT_NAME_MAX_LENGTH) return encoded;
  return `${prefix}-kh-${sha256Hex(tenantId)}`;
}
