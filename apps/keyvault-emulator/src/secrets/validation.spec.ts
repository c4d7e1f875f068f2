import fc from 'fast-check';
import { KeyVaultHttpError } from '../errors';
import { assertContentType, assertTags, assertValue, isValidSecretName, parseAttributes } from './validation';

const code = (fn: () => void): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (e) {
    return e instanceof KeyVaultHttpError ? `${e.status} ${e.code}` : 'other';
  }
};

describe('secret validation', () => {
  it('accepts exactly the names matching ^[0-9a-zA-Z-]{1,127}$', () => {
    expect(isValidSecretName('a')).toBe(true);
    expect(isValidSecretName('Tenant-42-oauth-Token')).toBe(true);
    expect(isValidSecretName('x'.repeat(127))).toBe(true);
    expect(isValidSecretName('x'.repeat(128))).toBe(false);
    expect(isValidSecretName('')).toBe(false);
    for (const bad of ['a_b', 'a.b', 'a b', 'ä', 'a/b', 'a%2Fb']) expect(isValidSecretName(bad)).toBe(false);
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 130 }), (s) => {
        expect(isValidSecretName(s)).toBe(/^[0-9a-zA-Z-]+$/.test(s) && s.length <= 127);
      }),
    );
  });

  it('limits values to 25 KB of UTF-8', () => {
    expect(code(() => assertValue('x'.repeat(25600)))).toBeUndefined();
    expect(code(() => assertValue('x'.repeat(25601)))).toBe('400 BadParameter');
    expect(code(() => assertValue('é'.repeat(12801)))).toBe('400 BadParameter'); // 25,602 bytes
    expect(code(() => assertValue(undefined))).toBe('400 BadParameter');
    expect(code(() => assertValue(''))).toBeUndefined();
  });

  it('limits tags to 15, names and values to 512 characters (about-secrets, "Secret tags")', () => {
    const tags = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));
    expect(code(() => assertTags(tags(15)))).toBeUndefined();
    expect(code(() => assertTags(tags(16)))).toBe('400 BadParameter');
    expect(code(() => assertTags({ ['k'.repeat(512)]: 'v'.repeat(512) }))).toBeUndefined();
    expect(code(() => assertTags({ ['k'.repeat(513)]: 'v' }))).toBe('400 BadParameter');
    expect(code(() => assertTags({ k: 'v'.repeat(513) }))).toBe('400 BadParameter');
    expect(code(() => assertTags({ k: 1 }))).toBe('400 BadParameter');
    expect(code(() => assertTags(['a']))).toBe('400 BadParameter');
    // As the README states (Azure's answer to either unverified): an empty value is kept, an empty name refused.
    expect(code(() => assertTags({ a: '' }))).toBeUndefined();
    expect(code(() => assertTags({ '': 'v' }))).toBe('400 BadParameter');
  });

  it('limits contentType to 255 characters', () => {
    expect(code(() => assertContentType('c'.repeat(255)))).toBeUndefined();
    expect(code(() => assertContentType('c'.repeat(256)))).toBe('400 BadParameter');
  });

  it('parses attributes, truncating unix seconds and rejecting wrong types', () => {
    expect(parseAttributes({ enabled: false, nbf: 10.7, exp: 20, unknown: 1 })).toEqual({ enabled: false, nbf: 10, exp: 20 });
    expect(parseAttributes(undefined)).toEqual({});
    expect(code(() => parseAttributes({ enabled: 'yes' }))).toBe('400 BadParameter');
    expect(code(() => parseAttributes({ exp: '2020' }))).toBe('400 BadParameter');
  });
});
