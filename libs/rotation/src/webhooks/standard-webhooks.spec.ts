/**
 * The pure Standard Webhooks functions, and their interoperability with the reference
 * implementation (`standardwebhooks`, a test dependency): it verifies what we sign and we verify
 * what it signs. The reference checks timestamps against the real clock, so these use real time.
 */
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import {
  generateWebhookSecret,
  MAX_SIGNATURES_CHECKED,
  signWebhookPayload,
  verifyWebhookPayload,
  webhookSecretKey,
} from './standard-webhooks';
import { WebhookSecretErrorCode, WebhookSecretValidationError, WebhookVerificationError } from './webhook-secret.errors';

const TOLERANCE = 300;
const body = JSON.stringify({ type: 'invoice.paid', data: { id: 'in_1', amount: 4200, note: 'ünïcødé ✓' } });
const nowSeconds = () => Math.floor(Date.now() / 1000);

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return (e as { code?: number }).code;
  }
}

function verify(secrets: string[], payload: string | Buffer, headers: Record<string, string>, now = new Date()) {
  return verifyWebhookPayload(secrets, payload, headers, { now, toleranceSeconds: TOLERANCE });
}

describe('generateWebhookSecret', () => {
  it('is whsec_ + base64 of 32 random bytes, different each time', () => {
    const a = generateWebhookSecret();
    const b = generateWebhookSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(webhookSecretKey(a)).toHaveLength(32);
    expect(a).not.toBe(b);
  });

  it('refuses a secret that is not base64 without quoting it', () => {
    const bad = 'whsec_not base64!!';
    expect(() => webhookSecretKey(bad)).toThrow(WebhookSecretValidationError);
    expect(() => webhookSecretKey(bad)).not.toThrow(/not base64!!/);
  });
});

describe('interop with the reference implementation (standardwebhooks)', () => {
  it('the reference verifies what we sign (string and bytes bodies)', () => {
    const secret = generateWebhookSecret();
    const headers = signWebhookPayload([secret], 'msg_2a', new Date(), body);
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(new Webhook(secret).verify(body, { ...headers })).toEqual(JSON.parse(body));
    const bytes = Buffer.from(body, 'utf8');
    expect(new Webhook(secret).verify(bytes, { ...signWebhookPayload([secret], 'msg_2b', nowSeconds(), bytes) })).toEqual(JSON.parse(body));
  });

  it('we verify what the reference signs, and produce the same signature', () => {
    const secret = generateWebhookSecret();
    const at = new Date(nowSeconds() * 1000);
    const signature = new Webhook(secret).sign('msg_ref', at, body);
    const headers = { 'webhook-id': 'msg_ref', 'webhook-timestamp': String(at.getTime() / 1000), 'webhook-signature': signature };
    expect(verify([secret], body, headers)).toEqual({ msgId: 'msg_ref', timestamp: at, secretIndex: 0 });
    expect(signWebhookPayload([secret], 'msg_ref', at, body)['webhook-signature']).toBe(signature);
  });

  it('secrets without the whsec_ prefix are the same key, as in the reference', () => {
    const secret = generateWebhookSecret();
    const raw = secret.slice('whsec_'.length);
    const headers = signWebhookPayload([raw], 'msg_raw', new Date(), body);
    expect(new Webhook(secret).verify(body, { ...headers })).toBeTruthy();
  });

  it('several signatures: the reference accepts ours signed with old + new, we accept its with either', () => {
    const [oldSecret, newSecret] = [generateWebhookSecret(), generateWebhookSecret()];
    const both = signWebhookPayload([newSecret, oldSecret], 'msg_both', new Date(), body);
    expect(both['webhook-signature'].split(' ')).toHaveLength(2);
    expect(new Webhook(oldSecret).verify(body, { ...both })).toBeTruthy();
    expect(new Webhook(newSecret).verify(body, { ...both })).toBeTruthy();

    const at = new Date(nowSeconds() * 1000);
    const byOld = new Webhook(oldSecret).sign('msg_o', at, body);
    const headers = { 'webhook-id': 'msg_o', 'webhook-timestamp': String(at.getTime() / 1000), 'webhook-signature': `v1a,AAAA v2,xyz ${byOld}` };
    expect(verify([newSecret, oldSecret], body, headers).secretIndex).toBe(1);
    expect(codeOf(() => verify([newSecret], body, headers))).toBe(WebhookSecretErrorCode.WEBHOOK_SIGNATURE_MISMATCH);
  });

  it('tampered body, timestamp, id or signature: refused by both', () => {
    const secret = generateWebhookSecret();
    const headers = signWebhookPayload([secret], 'msg_t', new Date(), body);
    const ts = Number(headers['webhook-timestamp']);
    const sig = headers['webhook-signature'];
    const raw = Buffer.from(sig.slice(3), 'base64');
    raw[0] ^= 1;
    const flipped = `v1,${raw.toString('base64')}`;
    const cases: Array<[string, string | Buffer, Record<string, string>]> = [
      ['body', body.replace('4200', '4201'), { ...headers }],
      ['body bytes', Buffer.concat([Buffer.from(body), Buffer.from(' ')]), { ...headers }],
      ['timestamp', body, { ...headers, 'webhook-timestamp': String(ts - 1) }],
      ['id', body, { ...headers, 'webhook-id': 'msg_u' }],
      ['signature', body, { ...headers, 'webhook-signature': flipped }],
    ];
    for (const [, payload, h] of cases) {
      expect(codeOf(() => verify([secret], payload, h))).toBe(WebhookSecretErrorCode.WEBHOOK_SIGNATURE_MISMATCH);
      expect(() => new Webhook(secret).verify(payload, h)).toThrow();
    }
  });

  it('timestamps outside ± 5 min: refused by both, with typed errors (too old / too new)', () => {
    const secret = generateWebhookSecret();
    const old = signWebhookPayload([secret], 'msg_old', nowSeconds() - TOLERANCE - 5, body);
    const future = signWebhookPayload([secret], 'msg_new', nowSeconds() + TOLERANCE + 5, body);
    expect(codeOf(() => verify([secret], body, { ...old }))).toBe(WebhookSecretErrorCode.WEBHOOK_TIMESTAMP_TOO_OLD);
    expect(codeOf(() => verify([secret], body, { ...future }))).toBe(WebhookSecretErrorCode.WEBHOOK_TIMESTAMP_TOO_NEW);
    expect(() => new Webhook(secret).verify(body, { ...old })).toThrow();
    expect(() => new Webhook(secret).verify(body, { ...future })).toThrow();
    // Just inside the window both accept.
    const edge = signWebhookPayload([secret], 'msg_edge', nowSeconds() - TOLERANCE + 5, body);
    expect(verify([secret], body, { ...edge }).msgId).toBe('msg_edge');
    expect(new Webhook(secret).verify(body, { ...edge })).toBeTruthy();
  });
});

describe('verifyWebhookPayload', () => {
  const secret = generateWebhookSecret();
  const now = new Date('2026-06-01T12:00:00Z');
  const signed = signWebhookPayload([secret], 'msg_1', now, body);

  it('headers in any case, or as a one-element list (Node IncomingHttpHeaders)', () => {
    const upper = Object.fromEntries(Object.entries(signed).map(([k, v]) => [k.toUpperCase(), v]));
    expect(verifyWebhookPayload([secret], body, upper, { now, toleranceSeconds: 300 }).msgId).toBe('msg_1');
    expect(verifyWebhookPayload([secret], body, { ...signed, 'webhook-id': ['msg_1'] }, { now, toleranceSeconds: 300 }).msgId).toBe('msg_1');
  });

  it('a typed error per missing or malformed header', () => {
    const v = (h: Record<string, string | string[]>) => codeOf(() => verifyWebhookPayload([secret], body, h, { now, toleranceSeconds: 300 }));
    expect(v({ ...signed, 'webhook-id': '' })).toBe(WebhookSecretErrorCode.WEBHOOK_MISSING_ID);
    expect(v({ ...signed, 'webhook-id': ['a', 'b'] })).toBe(WebhookSecretErrorCode.WEBHOOK_MISSING_ID);
    expect(v({ 'webhook-timestamp': signed['webhook-timestamp'], 'webhook-signature': signed['webhook-signature'] })).toBe(WebhookSecretErrorCode.WEBHOOK_MISSING_ID);
    expect(v({ ...signed, 'webhook-timestamp': '1e9' })).toBe(WebhookSecretErrorCode.WEBHOOK_MISSING_TIMESTAMP);
    expect(v({ ...signed, 'webhook-timestamp': '' })).toBe(WebhookSecretErrorCode.WEBHOOK_MISSING_TIMESTAMP);
    expect(v({ ...signed, 'webhook-signature': '' })).toBe(WebhookSecretErrorCode.WEBHOOK_MISSING_SIGNATURE);
    expect(v({ ...signed, 'webhook-signature': 'v2,abc v1a,zzz' })).toBe(WebhookSecretErrorCode.WEBHOOK_MISSING_SIGNATURE);
    expect(v({ ...signed, 'webhook-signature': 'v1,!!!' })).toBe(WebhookSecretErrorCode.WEBHOOK_MISSING_SIGNATURE);
  });

  it('looks at most MAX_SIGNATURES_CHECKED signatures of one header', () => {
    const junk = Array.from({ length: MAX_SIGNATURES_CHECKED }, () => `v1,${randomBytes(32).toString('base64')}`).join(' ');
    const h = { ...signed, 'webhook-signature': `${junk} ${signed['webhook-signature']}` };
    expect(codeOf(() => verifyWebhookPayload([secret], body, h, { now, toleranceSeconds: 300 }))).toBe(WebhookSecretErrorCode.WEBHOOK_SIGNATURE_MISMATCH);
  });

  it('errors never hold the secret, the signature or the body', () => {
    for (const h of [{ ...signed, 'webhook-signature': `v1,${randomBytes(32).toString('base64')}` }, { ...signed, 'webhook-timestamp': '1' }]) {
      try {
        verifyWebhookPayload([secret], body, h, { now, toleranceSeconds: 300 });
        throw new Error('verified');
      } catch (e) {
        expect(e).toBeInstanceOf(WebhookVerificationError);
        const text = JSON.stringify({ m: (e as Error).message, j: (e as WebhookVerificationError).toJSON() });
        for (const s of [secret, secret.slice(6), h['webhook-signature'], signed['webhook-signature'].slice(3), 'invoice.paid', 'msg_1']) expect(text).not.toContain(s);
      }
    }
  });

  it('signing refuses a bad id, body or timestamp', () => {
    expect(codeOf(() => signWebhookPayload([secret], 'has space', now, body))).toBe(WebhookSecretErrorCode.WEBHOOK_VALIDATION);
    expect(codeOf(() => signWebhookPayload([secret], 'm', now, { x: 1 } as never))).toBe(WebhookSecretErrorCode.WEBHOOK_VALIDATION);
    expect(codeOf(() => signWebhookPayload([secret], 'm', -1, body))).toBe(WebhookSecretErrorCode.WEBHOOK_VALIDATION);
    expect(codeOf(() => signWebhookPayload([], 'm', now, body))).toBe(WebhookSecretErrorCode.WEBHOOK_VALIDATION);
  });
});
