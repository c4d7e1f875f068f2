import { createCipheriv, randomBytes } from 'node:crypto';
import { LegacyAuthTagError, LegacyFormatError } from '../errors/migration.errors';
import { decryptLegacyField, parseLegacyField, parseLegacyKey } from './legacy-cipher';

/** Fixtures made with node:crypto directly, as a legacy system would have written them. */
function legacy(value: string, key: Buffer, encoding: 'hex' | 'base64', ivBytes = 12): string {
  const iv = randomBytes(ivBytes);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([c.update(value, 'utf8'), c.final()]);
  return `${iv.toString(encoding)}:${c.getAuthTag().toString(encoding)}:${ct.toString(encoding)}`;
}

describe('legacy cipher', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  const k3 = randomBytes(32);

  it.each(['hex', 'base64'] as const)('decrypts %s fields and detects the encoding', (enc) => {
    const out = decryptLegacyField(legacy('sk_live_abcdef', k1, enc), [k1]);
    expect(out).toEqual({ value: 'sk_live_abcdef', keyIndex: 0, encoding: enc });
  });

  it('accepts 16-byte IVs and non-ASCII text', () => {
    expect(decryptLegacyField(legacy('pässwörd-𝄞', k1, 'hex', 16), [k1]).value).toBe('pässwörd-𝄞');
  });

  it('tries keys in order and reports which one decrypted', () => {
    expect(decryptLegacyField(legacy('v', k2, 'hex'), [k1, k2, k3]).keyIndex).toBe(1);
    expect(decryptLegacyField(legacy('v', k3, 'base64'), [k1, k2, k3]).keyIndex).toBe(2);
  });

  it('refuses a tampered ciphertext or tag, and a row under an unknown key, naming no value', () => {
    const field = legacy('secret-value-123', k1, 'hex');
    const [iv, tag, ct] = field.split(':');
    const flipped = (h: string) => (h[0] === '0' ? '1' : '0') + h.slice(1);
    for (const bad of [`${iv}:${tag}:${flipped(ct)}`, `${iv}:${flipped(tag)}:${ct}`]) {
      const e = (() => { try { decryptLegacyField(bad, [k1, k2]); } catch (x) { return x as Error; } })();
      expect(e).toBeInstanceOf(LegacyAuthTagError);
      expect(e!.message).not.toContain('secret');
    }
    expect(() => decryptLegacyField(field, [k2, k3])).toThrow(LegacyAuthTagError);
  });

  it('refuses fields that are not iv:authTag:ciphertext', () => {
    for (const bad of ['', 'abc', 'a:b', 'zz:zz:zz', '00:00:00', `${'00'.repeat(12)}:${'00'.repeat(8)}:00`]) {
      expect(() => parseLegacyField(bad)).toThrow(LegacyFormatError);
    }
  });

  it('refuses a base64 part no encoder writes (a character too many, unused bits set) instead of decoding the bytes it resembles', () => {
    // 12 bytes of plaintext: a 16-character ciphertext without padding; the 16-byte tag ends in 4 unused bits.
    const [iv, tag, ct] = legacy('sk_live_abcd', k1, 'base64').split(':');
    const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const data = tag.replace(/=+$/, '');
    const last = ALPHABET[ALPHABET.indexOf(data[data.length - 1]) ^ 1];
    for (const bad of [`${iv}:${tag}:${ct}A`, `${iv}A:${tag}:${ct}`, `${iv}:${data.slice(0, -1)}${last}==:${ct}`]) {
      expect(() => decryptLegacyField(bad, [k1])).toThrow(LegacyFormatError);
    }
    // Padding left out, or the URL-safe alphabet, is still how the field was written.
    expect(decryptLegacyField(`${iv}:${data}:${ct}`, [k1]).value).toBe('sk_live_abcd');
  });

  it('decrypts base64 parts as common encoders write them: line-wrapped (MIME, PEM-style, a newline after each), padded or not, URL-safe', () => {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', k1, iv);
    const value = `ya29.${'a0AfB_byC'.repeat(30)}`; // an OAuth access token: its ciphertext spans several lines
    const ct = Buffer.concat([c.update(value, 'utf8'), c.final()]);
    const tag = c.getAuthTag();
    const lines = (width: number, eol: string, after = '') => (b: Buffer) => b.toString('base64').match(new RegExp(`.{1,${width}}`, 'g'))!.join(eol) + after;
    const encoders: Record<string, (b: Buffer) => string> = {
      'Java Base64.getMimeEncoder (76, CRLF)': lines(76, '\r\n'),
      "Python base64.encodebytes, Perl encode_base64 (76, LF after each line)": lines(76, '\n', '\n'),
      'openssl base64 (64, LF after each line)': lines(64, '\n', '\n'),
      "Ruby Base64.encode64 (60, LF after each line)": lines(60, '\n', '\n'),
      'unpadded': (b) => b.toString('base64').replace(/=+$/, ''),
      'URL-safe': (b) => b.toString('base64').replace(/\+/g, '-').replace(/\//g, '_'),
      'URL-safe, unpadded': (b) => b.toString('base64url'),
    };
    for (const [name, encode] of Object.entries(encoders)) {
      const field = [iv, tag, ct].map(encode).join(':');
      expect({ name, decrypted: (() => { try { return decryptLegacyField(field, [k1]); } catch (e) { return (e as Error).message; } })() }).toEqual({ name, decrypted: { value, keyIndex: 0, encoding: 'base64' } });
    }
    // Line breaks taken out, a stray character is still one: no encoder writes it.
    const wrapped = [iv, tag, ct].map(encoders['openssl base64 (64, LF after each line)']);
    expect(() => decryptLegacyField(`${wrapped[0]}:${wrapped[1]}:${wrapped[2].trimEnd()}A\n`, [k1])).toThrow(LegacyFormatError);
  });

  it('parses keys as 64 hex characters or base64 of 32 bytes', () => {
    expect(parseLegacyKey(k1.toString('hex'))).toEqual(k1);
    expect(parseLegacyKey(k1.toString('base64'))).toEqual(k1);
    expect(parseLegacyKey('00ff')).toBeUndefined();
    expect(parseLegacyKey(randomBytes(16).toString('base64'))).toBeUndefined();
  });
});
