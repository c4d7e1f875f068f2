import { KeysErrorCode, isKeysError } from './errors/keys.errors';
import { resolveKeysOptions } from './keys.options';

describe('resolveKeysOptions', () => {
  it('applies the defaults', () => {
    expect(resolveKeysOptions()).toEqual({ namePrefix: 'cv', verify: 'local', verifyEcLocally: false, allowRsa1_5: false, keyCacheTtlMs: 60_000, maxCachedKeys: 10_000, defaultPageSize: 25 });
  });

  it('says options that are no object must be one', () => {
    expect(() => resolveKeysOptions(5 as never)).toThrow(/\(options\): must be an object$/);
  });

  it('lists every problem in one KEYS_CONFIGURATION error, never a value', () => {
    let error: unknown;
    try {
      resolveKeysOptions({ namePrefix: 'Secret-Prefix-9', verify: 'sometimes' as 'local', allowRsa1_5: 'yes' as never, keyCacheTtlMs: -1, defaultPageSize: 26 });
    } catch (e) {
      error = e;
    }
    expect(isKeysError(error, KeysErrorCode.KEYS_CONFIGURATION)).toBe(true);
    const message = (error as Error).message;
    for (const field of ['namePrefix', 'verify', 'allowRsa1_5', 'keyCacheTtlMs', 'defaultPageSize']) expect(message).toContain(`${field}:`);
    expect(message).not.toContain('Secret-Prefix-9');
    expect(message).not.toContain('sometimes');
  });
  it('refuses a misspelt key and names it', () => {
    let error: unknown;
    try {
      resolveKeysOptions({ verify: 'remote', veriftEcLocally: true } as never);
    } catch (e) {
      error = e;
    }
    expect(isKeysError(error, KeysErrorCode.KEYS_CONFIGURATION)).toBe(true);
    expect((error as Error).message).toMatch(/\(options\): Unrecognized key: "veriftEcLocally"/);
  });

});
