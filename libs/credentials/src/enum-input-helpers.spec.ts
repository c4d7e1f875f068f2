/**
 * The lower-level public helpers take an enum field as the member or its string value, as the services' inputs do
 * (credential-enum-inputs.int-spec.ts), so an embedding app in plain strings, or a YAML/JSON config, type-checks.
 * Type-level too: `tsc --noEmit` must compile the string-valued calls below and refuse the `@ts-expect-error` ones,
 * which fail at run time with the typed VALIDATION error naming the field (the options: their one error).
 */
import { thrown } from '@app/testing';
import {
  CredentialErrorCode,
  CredentialsConfigurationError,
  CredentialType,
  CredentialValidationError,
  credentialSecretName,
  INTERNAL_CONNECTION_PREFIXES,
  isInternalCredential,
  maskValue,
  resolveCredentialsOptions,
  validateCredentialValue,
  ValueStoreKind,
  type CredentialsModuleOptions,
} from './index';

/** True only when A and B are the same type (outputs must not widen to plain strings). */
type Exactly<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const resolvedStoresKeepTheEnum: Exactly<ReturnType<typeof resolveCredentialsOptions>['valueStores'], Record<CredentialType, ValueStoreKind>> = true;

/** The typed VALIDATION error, naming the field. */
const validation = (field: string) => expect.objectContaining({ name: CredentialValidationError.name, code: CredentialErrorCode.VALIDATION, field });

describe('public helpers take an enum string value', () => {
  const key = 'sk_live_abcdef4f2';

  it('validateCredentialValue checks a string type as its member, and refuses an unknown one (field type)', () => {
    expect(validateCredentialValue('api_key', key)).toEqual({});
    // The string reaches its type's own rules.
    expect(thrown(() => validateCredentialValue('basic_auth_username', 'user:name'))).toEqual(validation('value'));
    // @ts-expect-error not a credential type
    expect(thrown(() => validateCredentialValue('apikey', key))).toEqual(validation('type'));
    expect(thrown(() => validateCredentialValue('apikey' as CredentialType, key)).message).not.toContain(key);
  });

  it('maskValue takes a string type, and refuses an unknown one (field type) without echoing the value', () => {
    expect(maskValue('api_key', key)).toBe('***4f2');
    expect(maskValue('client_private_key', `-----BEGIN PRIVATE KEY-----\n${key}\n-----END PRIVATE KEY-----`)).toBe('***');
    // @ts-expect-error not a credential type
    expect(thrown(() => maskValue('apikey', key))).toEqual(validation('type'));
    expect(thrown(() => maskValue('apikey' as CredentialType, key)).message).not.toContain(key);
  });

  it("credentialSecretName takes a string type (the same name as the member's), and refuses an unknown one (field type)", () => {
    const parts = { tenantId: 'acme', integrationId: 'github', connectionId: 'main' };
    expect(credentialSecretName({ ...parts, type: 'api_key' }, 0)).toBe(credentialSecretName({ ...parts, type: CredentialType.API_KEY }, 0));
    // @ts-expect-error not a credential type
    expect(thrown(() => credentialSecretName({ ...parts, type: 'apikey' }, 0))).toEqual(validation('type'));
    // An inherited key is no type either (a lookup alone found Object's constructor as a "code").
    expect(thrown(() => credentialSecretName({ ...parts, type: 'constructor' as CredentialType }, 0))).toEqual(validation('type'));
  });

  it('isInternalCredential takes a plain-string credential (any other string is not internal)', () => {
    expect(isInternalCredential({ type: 'custom_secret', connectionId: `${INTERNAL_CONNECTION_PREFIXES.pendingRotationValue}x` })).toBe(true);
    expect(isInternalCredential({ type: 'api_key', connectionId: `${INTERNAL_CONNECTION_PREFIXES.pendingRotationValue}x` })).toBe(false);
  });

  it('the valueStores option takes string types and stores; resolved, they are the enums; unknown ones are listed in its one error', () => {
    expect(resolvedStoresKeepTheEnum).toBe(true);
    const options: CredentialsModuleOptions = { valueStores: { api_key: 'envelope', oauth_access_token: 'vault' } };
    const resolved = resolveCredentialsOptions(options);
    expect(resolved.valueStores[CredentialType.API_KEY]).toBe(ValueStoreKind.ENVELOPE);
    expect(resolved.valueStores[CredentialType.OAUTH_ACCESS_TOKEN]).toBe(ValueStoreKind.VAULT);

    // @ts-expect-error neither a credential type nor a value store
    const wrong: CredentialsModuleOptions = { valueStores: { apikey: 'vault', api_key: 'disk' } };
    const error = thrown(() => resolveCredentialsOptions(wrong));
    expect(error).toBeInstanceOf(CredentialsConfigurationError);
    expect(error.message).toContain('valueStores: unknown credential type "apikey"');
    expect(error.message).toContain("valueStores.api_key: must be 'vault' or 'envelope'");
  });

  it('a valueStores key "__proto__" (JSON or YAML config makes it an own key) is listed as unknown, not dropped unseen', () => {
    const fromJson = JSON.parse('{ "valueStores": { "__proto__": "envelope", "apikey": "vault" } }') as CredentialsModuleOptions;
    const error = thrown(() => resolveCredentialsOptions(fromJson));
    expect(error).toBeInstanceOf(CredentialsConfigurationError);
    expect(error.message).toContain('valueStores: unknown credential type "[__proto__]"');
    expect(error.message).toContain('valueStores: unknown credential type "apikey"');
    // An object under it changes no default either (zod would have set it as the parsed record's prototype).
    const nested = JSON.parse('{ "valueStores": { "__proto__": { "api_key": "envelope" } } }') as CredentialsModuleOptions;
    expect(thrown(() => resolveCredentialsOptions(nested)).message).toMatch(/unknown credential type "\[__proto__\]"[\s\S]*valueStores\.\[__proto__\]: must be 'vault' or 'envelope'/);
    expect(({} as Record<string, unknown>).api_key).toBeUndefined();
  });
});
