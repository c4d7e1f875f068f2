/**
 * The lower-level public inputs of the lib take a credential type as the member or its string value ('api_key'),
 * as the policy inputs do (rotation-policies.int-spec.ts): `resolvePolicy` / `RotationPolicyService.resolve`'s
 * subject, the registry's lookups, the `defaults` option and a handler of the `handlers` option. Type-level too:
 * `tsc --noEmit` compiles the string-valued calls and refuses the `@ts-expect-error` ones, which fail at run time
 * with ROTATION_VALIDATION naming the field (the options: their one error listing every problem).
 */
import { CredentialType } from '@app/credentials';
import { thrown } from '@app/testing';
import {
  DEFAULT_ROTATION_POLICIES,
  resolvePolicy,
  resolveRotationOptions,
  RotationConfigurationError,
  RotationErrorCode,
  RotationHandlerRegistry,
  RotationValidationError,
  type EffectivePolicy,
  type PolicySubject,
  type RotationModuleOptions,
} from './index';

/** True only when A and B are the same type (outputs must not widen to plain strings). */
type Exactly<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const outputsKeepTheEnum: [Exactly<EffectivePolicy['type'], CredentialType>, Exactly<keyof ReturnType<typeof resolveRotationOptions>['defaults'], CredentialType>] = [true, true];

/** The typed VALIDATION error, naming the field. */
const validation = (field: string) => expect.objectContaining({ name: RotationValidationError.name, code: RotationErrorCode.VALIDATION, field });

describe('rotation inputs take a credential type string value', () => {
  const subject = { id: '0b7c6f3e-2a4d-4c1e-9f00-5d2b8a1c3e4f', tenantId: 'acme', integrationId: 'github' };

  it('resolvePolicy resolves a string type as its member and answers with the enum; refuses a type that is none (field type)', () => {
    expect(outputsKeepTheEnum).toEqual([true, true]);
    const { defaults } = resolveRotationOptions();
    const plain: PolicySubject = { ...subject, type: 'api_key' };
    const policy = resolvePolicy(defaults, [], plain);
    expect(policy).toMatchObject({ type: CredentialType.API_KEY, ...DEFAULT_ROTATION_POLICIES[CredentialType.API_KEY] });
    // @ts-expect-error not a credential type
    expect(thrown(() => resolvePolicy(defaults, [], { ...subject, type: 'apikey' }))).toEqual(validation('type'));
    // An inherited key is none either (it found no default: a policy of undefined fields).
    expect(thrown(() => resolvePolicy(defaults, [], { ...subject, type: 'constructor' as CredentialType }))).toEqual(validation('type'));
  });

  it("the registry's lookups take a string type; a type that is none is refused (field type), not answered with the integration's handler", () => {
    const registry = new RotationHandlerRegistry(resolveRotationOptions());
    const byIntegration = { mint: async () => ({ value: 'minted' }) };
    const byType = { mint: async () => ({ value: 'minted' }) };
    registry.register({ integrationId: 'github', handler: byIntegration });
    registry.register({ type: 'client_certificate', handler: byType });
    expect(registry.handlerFor('github', 'api_key')).toBe(byIntegration);
    expect(registry.handlerFor('other', 'client_certificate')).toBe(byType);
    expect(registry.generatorFor('api_key')).toEqual(expect.any(Function));
    // @ts-expect-error not a credential type
    expect(thrown(() => registry.handlerFor('github', 'apikey'))).toEqual(validation('type'));
    // @ts-expect-error not a credential type
    expect(thrown(() => registry.generatorFor('apikey'))).toEqual(validation('type'));
  });

  it('the defaults option takes string types; an unknown type there or in a handler is listed in the one error', () => {
    const options: RotationModuleOptions = { defaults: { api_key: { rotateAfterDays: 30 } } };
    expect(resolveRotationOptions(options).defaults[CredentialType.API_KEY]).toMatchObject({ rotateAfterDays: 30 });

    const handler = { mint: async () => ({ value: 'minted' }) };
    // @ts-expect-error neither is a credential type
    const wrong: RotationModuleOptions = { defaults: { apikey: { rotateAfterDays: 30 } }, handlers: [{ type: 'apikey', handler }], passwordPolicy: { length: 4 } };
    const error = thrown(() => resolveRotationOptions(wrong));
    expect(error).toBeInstanceOf(RotationConfigurationError);
    const message = error.message;
    for (const field of ['defaults', 'handlers.0', 'passwordPolicy.length']) expect(message).toContain(`${field}:`);
    expect(message).toMatch(/apikey/);
  });

  it('a defaults key "__proto__" (JSON or YAML config makes it an own key) is listed as unknown, not dropped unseen', () => {
    const fromJson = JSON.parse('{ "defaults": { "__proto__": { "rotateAfterDays": 1 }, "api_key": { "rotateAfterDays": 30 } } }') as RotationModuleOptions;
    const error = thrown(() => resolveRotationOptions(fromJson));
    expect(error).toBeInstanceOf(RotationConfigurationError);
    expect(error.message).toMatch(/defaults: .*"\[__proto__\]"/);
    // The notifications' mutedTypes, keyed by event name, alike (in the same error).
    const muted = JSON.parse('{ "defaults": { "__proto__": {} }, "notifications": { "mutedTypes": { "__proto__": ["api_key"] } } }') as RotationModuleOptions;
    expect(thrown(() => resolveRotationOptions(muted)).message).toMatch(/defaults: .*"\[__proto__\]"[\s\S]*notifications\.mutedTypes: .*"\[__proto__\]"/);
  });

  it("notifications.mutedTypes stays typed by event name for the app's tsc (the __proto__ check must not widen it)", () => {
    const muted: RotationModuleOptions = { notifications: { mutedTypes: { 'credential.rotated': ['api_key'] } } };
    expect(resolveRotationOptions(muted).notifications.mutedTypes).toEqual({ 'credential.rotated': ['api_key'] });
    // @ts-expect-error not an event name
    const typo: RotationModuleOptions = { notifications: { mutedTypes: { 'credential.rotatd': ['api_key'] } } };
    expect(thrown(() => resolveRotationOptions(typo)).message).toMatch(/notifications\.mutedTypes: .*credential\.rotatd/);
    // @ts-expect-error not an object of event → types
    const notRecord: RotationModuleOptions = { notifications: { mutedTypes: ['credential.rotated'] } };
    expect(thrown(() => resolveRotationOptions(notRecord)).message).toContain('notifications.mutedTypes:');
  });
});
