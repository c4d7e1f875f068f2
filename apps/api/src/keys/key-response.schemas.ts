import { VAULT_EC_CURVES, VAULT_ENCRYPTION_ALGORITHMS, VAULT_KEY_OPERATIONS, VAULT_SIGNATURE_ALGORITHMS } from '@app/key-vault';
import type { DeletedKeyDetails, KeyDetails, KeyProperties, KeySummary, PublicJwk, VerifyResult } from '@app/keys';
import { arrayOf, base64url, boolean, enumOf, instant, integer, members, object, optional, pageOf, stringMap, text, type Answer } from '../http/json-schema';
import type { KeysController } from './keys.controller';

/** Response schemas of the keys routes (components of the OpenAPI document). Binary fields are base64url. */
const keyType = enumOf(members<KeyDetails['type']>({ RSA: 1, EC: 1 }));
const curve = enumOf(VAULT_EC_CURVES);
const keyOps = arrayOf(enumOf(VAULT_KEY_OPERATIONS));
const signatureAlgorithm = enumOf(VAULT_SIGNATURE_ALGORITHMS);
const encryptionAlgorithm = enumOf(VAULT_ENCRYPTION_ALGORITHMS);

const summaryOf = {
  name: { ...text, description: 'the name inside your tenant' },
  enabled: boolean,
  tags: stringMap,
  createdOn: optional(instant),
  updatedOn: optional(instant),
  expiresOn: optional(instant),
  notBefore: optional(instant),
} as const;

const propertiesOf = { ...summaryOf, version: text } as const;

const publicKey = object<PublicJwk>(
  {
    kty: keyType,
    kid: { ...text, description: "the vault's key id" },
    key_ops: keyOps,
    n: optional(base64url),
    e: optional(base64url),
    crv: optional(curve),
    x: optional(base64url),
    y: optional(base64url),
  },
  { description: 'the public half as a JWK (RFC 7517): n and e for RSA, crv, x and y for EC; never a private member' },
);

/** A listed key (its latest version): Key Vault's key list names no version — GET the key or its versions for it. */
const keySummary = object<KeySummary>(summaryOf, { description: "a key as listed: its latest version's properties, without the version id (the vault lists keys without versions; GET the key for it)" });

const keyVersion = object<KeyProperties>(propertiesOf, { description: 'one version of a key' });

const keyDetails = object<KeyDetails>({
  ...propertiesOf,
  type: keyType,
  size: optional({ ...integer, description: 'RSA modulus bits' }),
  curve: optional(curve),
  keyOps,
  publicKey,
});

/** Which key version did a cryptographic operation. */
const used = { name: text, version: text } as const;

/** The schemas of this part's answers, by component name. */
export const KEY_RESPONSE_SCHEMAS = {
  Key: keyDetails,
  PublicJwk: publicKey,
  KeySummary: keySummary,
  KeyPage: pageOf(keySummary),
  KeyVersion: keyVersion,
  KeyVersionPage: pageOf(keyVersion),
  DeletedKey: object<DeletedKeyDetails>({ name: text, deletedOn: optional(instant), scheduledPurgeDate: optional(instant) }),
  KeyBackup: object<Answer<KeysController['backup']>>({ backup: base64url }),
  KeySignature: object<Answer<KeysController['sign']>>({ ...used, algorithm: signatureAlgorithm, signature: base64url }),
  KeyVerification: object<VerifyResult>({ ...used, algorithm: signatureAlgorithm, valid: boolean, verifiedIn: enumOf(members<VerifyResult['verifiedIn']>({ local: 1, vault: 1 })) }),
  KeyCiphertext: object<Answer<KeysController['encrypt']>>({ ...used, algorithm: encryptionAlgorithm, ciphertext: base64url }),
  KeyPlaintext: object<Answer<KeysController['decrypt']>>({ ...used, algorithm: encryptionAlgorithm, plaintext: base64url }),
  KeyWrapped: object<Answer<KeysController['wrapKey']>>({ ...used, algorithm: encryptionAlgorithm, wrappedKey: base64url }),
  KeyUnwrapped: object<Answer<KeysController['unwrapKey']>>({ ...used, algorithm: encryptionAlgorithm, key: base64url }),
};
