/** What a stored secret is. Stored as the enum value in `cv_credentials.type`. */
export enum CredentialType {
  OAUTH_ACCESS_TOKEN = 'oauth_access_token',
  OAUTH_REFRESH_TOKEN = 'oauth_refresh_token',
  API_KEY = 'api_key',
  BASIC_AUTH_USERNAME = 'basic_auth_username',
  BASIC_AUTH_PASSWORD = 'basic_auth_password',
  /** A PEM X.509 certificate (chain allowed: the first certificate is the leaf). */
  CLIENT_CERTIFICATE = 'client_certificate',
  /** A PEM private key (PKCS#8, PKCS#1 or SEC1; unencrypted). */
  CLIENT_PRIVATE_KEY = 'client_private_key',
  /** A webhook signing secret, at least 24 bytes of entropy (raw or `whsec_<base64>`). */
  WEBHOOK_SECRET = 'webhook_secret',
  CUSTOM_SECRET = 'custom_secret',
}

export const CREDENTIAL_TYPES: readonly CredentialType[] = Object.values(CredentialType);

/*
 * What the public inputs take for an enum field: the member or its string value (`'api_key'`), so an embedding app
 * in plain strings or JSON type-checks. Checked and narrowed to the enum once where the input enters the lib;
 * outputs (metadata) are always the enum.
 */
export type CredentialTypeInput = CredentialType | `${CredentialType}`;
export type ValueStoreKindInput = ValueStoreKind | `${ValueStoreKind}`;
export type CredentialStatusInput = CredentialStatus | `${CredentialStatus}`;

/**
 * Short, stable, lowercase codes used inside Key Vault secret names. Never change a code: it is
 * part of every existing secret name.
 */
export const CREDENTIAL_TYPE_NAME_CODES: Readonly<Record<CredentialType, string>> = {
  [CredentialType.OAUTH_ACCESS_TOKEN]: 'oat',
  [CredentialType.OAUTH_REFRESH_TOKEN]: 'ort',
  [CredentialType.API_KEY]: 'key',
  [CredentialType.BASIC_AUTH_USERNAME]: 'bau',
  [CredentialType.BASIC_AUTH_PASSWORD]: 'bap',
  [CredentialType.CLIENT_CERTIFICATE]: 'crt',
  [CredentialType.CLIENT_PRIVATE_KEY]: 'pky',
  [CredentialType.WEBHOOK_SECRET]: 'whs',
  [CredentialType.CUSTOM_SECRET]: 'cus',
};

/** Where a credential's value lives. */
export enum ValueStoreKind {
  /** One Key Vault secret per credential; a rotation is a new secret version. */
  VAULT = 'vault',
  /** AES-256-GCM ciphertext in `cv_envelope_values` under a per-tenant data key kept in Key Vault. */
  ENVELOPE = 'envelope',
}

/** Stored lifecycle status of a credential. `expired` is also derived on read from `expiresAt`. */
export enum CredentialStatus {
  ACTIVE = 'active',
  EXPIRED = 'expired',
  NEEDS_REAUTH = 'needs_reauth',
  REVOKED = 'revoked',
  DELETED = 'deleted',
}

/** Status of an integration connection on the tenant's "integrations" screen. */
export enum ConnectionStatus {
  CONNECTED = 'connected',
  NOT_CONFIGURED = 'not_configured',
  EXPIRED = 'expired',
  NEEDS_REAUTH = 'needs_reauth',
  REVOKED = 'revoked',
}
