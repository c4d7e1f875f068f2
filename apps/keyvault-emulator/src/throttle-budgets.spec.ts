import { chargeOf, keyTransactionWeight, ThrottleBudgets } from './throttle-budgets';

const rsa = (bits: number, kty: 'RSA' | 'RSA-HSM' = 'RSA') => ({ kty, publicJwk: { n: Buffer.alloc(bits / 8, 0xff).toString('base64url'), e: 'AQAB' } });
const ec = (kty: 'EC' | 'EC-HSM' = 'EC', crv = 'P-521') => ({ kty, publicJwk: { crv, x: 'AA', y: 'AA' } });

describe('keyTransactionWeight (Azure: software 4,000 / 1,000 / 500 per 10 s for RSA-2048 or EC / RSA-3072 / RSA-4096; HSM half)', () => {
  it('weighs each key type as 4,000 over its own limit', () => {
    expect([rsa(2048), rsa(3072), rsa(4096), ec(), ec('EC', 'P-256K')].map(keyTransactionWeight)).toEqual([1, 4, 8, 1, 1]);
    expect([rsa(2048, 'RSA-HSM'), rsa(3072, 'RSA-HSM'), rsa(4096, 'RSA-HSM'), ec('EC-HSM')].map(keyTransactionWeight)).toEqual([2, 8, 16, 2]);
  });

  it('charges Set Secret and Create Key to their own budgets, lists and unknown keys 1', () => {
    const none = () => undefined;
    const body = (o: unknown) => Buffer.from(JSON.stringify(o));
    expect(chargeOf('setSecret', body({ value: 'x' }), none, false)).toEqual({ budget: 'createSecret', weight: 1 });
    expect(chargeOf('createKey', body({ kty: 'RSA-HSM', key_size: 4096 }), none, true)).toEqual({ budget: 'createKey', weight: 2 });
    expect(chargeOf('createKey', Buffer.from('{'), none, true)).toEqual({ budget: 'createKey', weight: 1 });
    expect(chargeOf('getSecret', Buffer.alloc(0), () => rsa(4096), false)).toEqual({ budget: 'other', weight: 1 });
    expect(chargeOf('listKeyVersions', Buffer.alloc(0), () => rsa(4096), true)).toEqual({ budget: 'other', weight: 1 });
    expect(chargeOf('sign', Buffer.alloc(0), none, true)).toEqual({ budget: 'other', weight: 1 });
    expect(chargeOf('sign', Buffer.alloc(0), () => rsa(4096, 'RSA-HSM'), true)).toEqual({ budget: 'other', weight: 16 });
  });
});

describe('ThrottleBudgets.take over a vault and its subscription', () => {
  it('admits on every budget or on none: a request one of them refuses counts on neither', () => {
    const vault = ThrottleBudgets.of({ limit: 2, windowMs: 60_000, createSecretLimit: 1, createKeyLimit: 1 });
    const subscription = ThrottleBudgets.of({ limit: 3, windowMs: 60_000, createSecretLimit: 5, createKeyLimit: 5 });
    const other = { budget: 'other', weight: 1 } as const;
    expect(ThrottleBudgets.take(other, [vault, subscription])).toEqual({ ok: true });
    expect(ThrottleBudgets.take(other, [vault, subscription])).toEqual({ ok: true });
    // The vault is full: refused, and the subscription keeps its last slot for another vault.
    expect(ThrottleBudgets.take(other, [vault, subscription])).toEqual({ ok: false, retryAfterSeconds: 60 });
    expect(ThrottleBudgets.take(other, [undefined, subscription])).toEqual({ ok: true });
    expect(ThrottleBudgets.take(other, [undefined, subscription])).toEqual({ ok: false, retryAfterSeconds: 60 });
    // Other budgets are apart.
    expect(ThrottleBudgets.take({ budget: 'createSecret', weight: 1 }, [vault, subscription])).toEqual({ ok: true });
    expect(ThrottleBudgets.take({ budget: 'other', weight: 1 }, [undefined, undefined])).toEqual({ ok: true });
  });
});
