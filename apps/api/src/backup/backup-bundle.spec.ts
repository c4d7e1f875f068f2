import { randomBytes } from 'node:crypto';
import { BackupBundleError, keyFromPassphrase, openBundle, parseBackupKey, readBundleHeader, sealBundle } from './backup-bundle';

const header = { format: 'cvbak' as const, version: 1 as const, tenantId: 't1', createdAt: '2026-12-02T00:00:00.000Z', counts: { credentials: 1, versions: 1, policies: 0 }, key: { source: 'key-file' as const } };

describe('backup bundle', () => {
  it('round-trips a payload and keeps values out of the clear text', () => {
    const key = randomBytes(32);
    const bundle = sealBundle(header, { secret: 'sk_live_should_not_show' }, key);
    expect(bundle).not.toContain('sk_live');
    expect(readBundleHeader(bundle)).toMatchObject({ tenantId: 't1', counts: { credentials: 1 }, key: { source: 'key-file' } });
    expect(openBundle(bundle, key).payload).toEqual({ secret: 'sk_live_should_not_show' });
  });

  it('refuses another key, an edited header and a flipped ciphertext byte', () => {
    const key = randomBytes(32);
    const bundle = sealBundle(header, { a: 1 }, key);
    expect(() => openBundle(bundle, randomBytes(32))).toThrow(/not the key the backup was made with/);
    expect(() => openBundle(bundle.replace('"t1"', '"t2"'), key)).toThrow(/integrity check/);
    const [head, body] = bundle.split('\n');
    const bytes = Buffer.from(body, 'base64');
    bytes[3] ^= 1;
    expect(() => openBundle(`${head}\n${bytes.toString('base64')}\n`, key)).toThrow(BackupBundleError);
    expect(() => readBundleHeader('hello')).toThrow(/not a Credential Vault backup/);
  });

  it('refuses a header edited into another shape with BackupBundleError, before any key is looked up (no TypeError)', () => {
    const key = randomBytes(32);
    const [line, body] = sealBundle(header, { a: 1 }, key).split('\n');
    const h = JSON.parse(line.slice('CVBAK1 '.length)) as Record<string, Record<string, unknown>>;
    const edits: Record<string, unknown>[] = [
      { key: undefined },
      { key: null },
      { key: { source: 'key-file' } },
      { key: { ...h.key, source: 'elsewhere' } },
      { key: { source: 'passphrase', fingerprint: h.key.fingerprint } },
      { key: { source: 'key-vault', fingerprint: h.key.fingerprint, secretName: 7 } },
      { cipher: { ...h.cipher, iv: '' } },
      { cipher: { ...h.cipher, iv: 5 } },
      { cipher: { alg: 'A256GCM', compression: 'gzip' } },
    ];
    for (const edit of edits) {
      const edited = `CVBAK1 ${JSON.stringify({ ...h, ...edit })}\n${body}\n`;
      expect(() => readBundleHeader(edited)).toThrow(BackupBundleError);
      expect(() => openBundle(edited, key)).toThrow(BackupBundleError);
    }
  });

  it('reads keys as base64 or hex, refuses anything else, and stretches passphrases deterministically', () => {
    const key = randomBytes(32);
    expect(parseBackupKey(key.toString('base64'))).toEqual(key);
    expect(parseBackupKey(`${key.toString('hex')}\n`)).toEqual(key);
    expect(() => parseBackupKey('short')).toThrow(/32 bytes/);
    const salt = randomBytes(16);
    expect(keyFromPassphrase('a long enough phrase', salt)).toEqual(keyFromPassphrase('a long enough phrase', salt));
    expect(() => keyFromPassphrase('short', salt)).toThrow(/at least 12/);
  });
});
