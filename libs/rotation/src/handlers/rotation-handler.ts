import type { CredentialType, CredentialTypeInput } from '@app/credentials';

/** What a handler is asked to rotate. References only, never the current value. */
export interface RotationRequest {
  tenantId: string;
  credentialId: string;
  integrationId: string;
  connectionId: string;
  type: CredentialType;
  /** The version being replaced. */
  fromVersion: number;
  /** Why: `scheduled` (rotation-check), or the caller's reason. */
  reason: string;
}

/** A freshly minted value. The lib writes it as the credential's next version. */
export interface MintedValue {
  value: string;
  /** Expiry of the new value, when the provider gives one. */
  expiresAt?: Date | null;
}

/**
 * Mints a new value at the provider (e.g. calls its API to create a new key). Registered per
 * integration or per credential type; an integration's handler wins over a type's. A handler must
 * be idempotent enough to be called again after a crash: until the lib writes the new version, the
 * previous value stays current. A minted value whose vault write fails is kept (envelope-encrypted) and
 * written by the next rotation, which then does not call the handler.
 */
export interface RotationHandler {
  mint(request: RotationRequest): Promise<MintedValue>;
}

/** A handler and what it serves: an integration, a credential type, or one type of one integration. */
export interface RotationHandlerRegistration {
  integrationId?: string;
  /** `CredentialType.API_KEY` or `'api_key'`. */
  type?: CredentialTypeInput;
  handler: RotationHandler;
}
