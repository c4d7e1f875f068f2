import { KeyVaultHttpError } from '../errors';
import { KeyStore } from './store';
import { addIsoDuration } from './durations';
import { parseCreateKey, parseRotationPolicy } from './validation';

const material = { publicJwk: { crv: 'P-256', x: 'x', y: 'y' }, privateKey: 'never rendered' };
const inner = (fn: () => unknown) => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    const err = e as KeyVaultHttpError;
    return `${err.status} ${err.innerCode ?? err.code}`;
  }
};

describe('KeyStore.usable: which versions a crypto operation may use', () => {
  let now = Date.parse('2026-06-01T00:00:00Z');
  const store = new KeyStore({ softDeleteRetentionDays: 7, purgeProtection: false, operationDelayMs: 0, vaultName: 't', now: () => now });
  const t = Math.floor(now / 1000);
  const sign = { operation: 'sign', keyOp: 'sign', honoursValidity: true } as const;
  const verify = { operation: 'verify', keyOp: 'verify', honoursValidity: false } as const;

  it('refuses a disabled key for every operation, and an operation outside key_ops', () => {
    store.create('off', { kty: 'EC', keyOps: ['sign', 'verify'], attributes: { enabled: false } }, material);
    expect([inner(() => store.usable('off', undefined, sign)), inner(() => store.usable('off', undefined, verify))]).toEqual(['403 KeyDisabled', '403 KeyDisabled']);
    store.create('verify-only', { kty: 'EC', keyOps: ['verify'], attributes: {} }, material);
    expect(inner(() => store.usable('verify-only', undefined, sign))).toBe('403 KeyOperationForbidden');
    expect(inner(() => store.usable('verify-only', undefined, verify))).toBe('ok');
    expect(inner(() => store.usable('missing', undefined, verify))).toBe('404 KeyNotFound');
  });

  it('applies nbf/exp to sign/encrypt/wrap only, with exp exclusive', () => {
    store.create('window', { kty: 'EC', keyOps: ['sign', 'verify'], attributes: { nbf: t + 10, exp: t + 20 } }, material);
    expect([inner(() => store.usable('window', undefined, sign)), inner(() => store.usable('window', undefined, verify))]).toEqual(['403 KeyNotYetValid', 'ok']);
    now += 10_000;
    expect(inner(() => store.usable('window', undefined, sign))).toBe('ok');
    now += 10_000;
    expect([inner(() => store.usable('window', undefined, sign)), inner(() => store.usable('window', undefined, verify))]).toEqual(['403 KeyExpired', 'ok']);
  });
});

describe('key request validation', () => {
  it('fills in Azure defaults: RSA 2048 with six key_ops, EC P-256 with sign/verify', () => {
    expect(parseCreateKey({ kty: 'RSA' })).toMatchObject({ shape: { kty: 'RSA', keySize: 2048 }, input: { keyOps: ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'] } });
    expect(parseCreateKey({ kty: 'EC-HSM' })).toMatchObject({ shape: { kty: 'EC-HSM', crv: 'P-256' }, input: { keyOps: ['sign', 'verify'] } });
    for (const body of [{ kty: 'RSA', key_size: 2047 }, { kty: 'RSA', public_exponent: 4 }, { kty: 'EC', crv: 'P-224' }, { kty: 'RSA', key_ops: 'sign' }, { kty: 'oct-HSM' }]) {
      expect(inner(() => parseCreateKey(body))).toBe('400 BadParameter');
    }
  });

  it('accepts rotation policies with one ISO 8601 trigger per action', () => {
    expect(parseRotationPolicy({ lifetimeActions: [{ trigger: { timeAfterCreate: 'P1Y2M' }, action: { type: 'rotate' } }], attributes: { expiryTime: 'P2Y' } })).toEqual({
      lifetimeActions: [{ trigger: { timeAfterCreate: 'P1Y2M' }, action: { type: 'Rotate' } }],
      expiryTime: 'P2Y',
    });
    for (const body of [
      { lifetimeActions: [{ trigger: { timeAfterCreate: 'P1D', timeBeforeExpiry: 'P1D' }, action: { type: 'Rotate' } }] },
      { lifetimeActions: [{ trigger: {}, action: { type: 'Notify' } }] },
      { lifetimeActions: [{ trigger: { timeAfterCreate: 'P' }, action: { type: 'Notify' } }] },
      { lifetimeActions: [{ trigger: { timeAfterCreate: 'P1D' }, action: { type: 'Delete' } }] },
      { attributes: { expiryTime: 90 } },
    ]) {
      expect(inner(() => parseRotationPolicy(body))).toBe('400 BadParameter');
    }
  });

  it('adds ISO 8601 durations as the calendar counts them', () => {
    const at = Date.UTC(2026, 0, 31, 12);
    expect(new Date(addIsoDuration(at, 'P90D')).toISOString()).toBe('2026-05-01T12:00:00.000Z');
    expect(new Date(addIsoDuration(at, 'P1Y2M1W')).toISOString()).toBe('2027-04-07T12:00:00.000Z'); // 31 March 2027, then a week
    expect(new Date(addIsoDuration(at, 'PT48H30M')).toISOString()).toBe('2026-02-02T12:30:00.000Z');
  });

  it("refuses rotation policies outside Key Vault's limits, with the limit named", () => {
    const rotate = (trigger: Record<string, string>) => [{ trigger, action: { type: 'Rotate' } }];
    const message = (body: Record<string, unknown>) => {
      try {
        parseRotationPolicy(body);
        return 'accepted';
      } catch (e) {
        return (e as { body?: { error?: { message?: string } } }).body?.error?.message ?? String(e);
      }
    };
    // At the edges: accepted.
    expect(message({ attributes: { expiryTime: 'P28D' }, lifetimeActions: rotate({ timeBeforeExpiry: 'P21D' }) })).toBe('accepted');
    expect(message({ attributes: { expiryTime: 'P1M' }, lifetimeActions: rotate({ timeAfterCreate: 'P1W' }) })).toBe('accepted');
    expect(message({ attributes: { expiryTime: 'P1Y' }, lifetimeActions: [{ trigger: { timeBeforeExpiry: 'PT168H' }, action: { type: 'Notify' } }] })).toBe('accepted');
    // Past them: refused, saying which.
    expect(message({ attributes: { expiryTime: 'P27D' } })).toMatch(/at least 28 days/);
    expect(message({ attributes: { expiryTime: 'PT671H' } })).toMatch(/at least 28 days/);
    expect(message({ lifetimeActions: rotate({ timeAfterCreate: 'P6D' }) })).toMatch(/at least 7 days/);
    expect(message({ attributes: { expiryTime: 'P90D' }, lifetimeActions: rotate({ timeBeforeExpiry: 'PT1H' }) })).toMatch(/at least 7 days/);
    expect(message({ lifetimeActions: rotate({ timeBeforeExpiry: 'P30D' }) })).toMatch(/needs "attributes.expiryTime"/);
    expect(message({ attributes: { expiryTime: 'P28D' }, lifetimeActions: rotate({ timeBeforeExpiry: 'P22D' }) })).toMatch(/7 days after creation/);
    expect(message({ lifetimeActions: [{ trigger: { timeAfterCreate: 'P30D' }, action: { type: 'Notify' } }] })).toMatch(/Notify action takes timeBeforeExpiry only/);
    // A rotation after creation must also come at least 7 days before the new version expires.
    expect(message({ attributes: { expiryTime: 'P90D' }, lifetimeActions: rotate({ timeAfterCreate: 'P83D' }) })).toBe('accepted');
    expect(message({ attributes: { expiryTime: 'P90D' }, lifetimeActions: rotate({ timeAfterCreate: 'P84D' }) })).toMatch(/at least 7 days before "attributes.expiryTime"/);
  });
});
