import { matchRoute } from './router';
import { assertApiVersion, definesKeyRelease, hasRecoverableDays, isDatedApiVersion, isSupportedApiVersion } from './api-version';

describe('matchRoute', () => {
  const op = (m: string, p: string) => {
    const r = matchRoute(m, p);
    return r.kind === 'op' ? [r.operation, r.name, r.version] : [r.kind];
  };

  it('maps the secrets REST API', () => {
    expect(op('PUT', '/secrets/a')).toEqual(['setSecret', 'a', undefined]);
    expect(op('GET', '/secrets/a')).toEqual(['getSecret', 'a', undefined]);
    expect(op('GET', '/secrets/a/')).toEqual(['getSecret', 'a', '']);
    expect(op('GET', '/secrets/a/0123456789abcdef0123456789abcdef')).toEqual(['getSecret', 'a', '0123456789abcdef0123456789abcdef']);
    expect(op('PATCH', '/secrets/a/v1')).toEqual(['updateSecret', 'a', 'v1']);
    expect(op('GET', '/secrets')).toEqual(['listSecrets', undefined, undefined]);
    expect(op('GET', '/secrets/a/versions')).toEqual(['listSecretVersions', 'a', undefined]);
    expect(op('DELETE', '/secrets/a')).toEqual(['deleteSecret', 'a', undefined]);
    expect(op('GET', '/deletedsecrets/a')).toEqual(['getDeletedSecret', 'a', undefined]);
    expect(op('GET', '/deletedsecrets')).toEqual(['listDeletedSecrets', undefined, undefined]);
    expect(op('POST', '/deletedsecrets/a/recover')).toEqual(['recoverDeletedSecret', 'a', undefined]);
    expect(op('DELETE', '/deletedsecrets/a')).toEqual(['purgeDeletedSecret', 'a', undefined]);
    expect(op('POST', '/secrets/a/backup')).toEqual(['backupSecret', 'a', undefined]);
    expect(op('POST', '/secrets/restore')).toEqual(['restoreSecret', undefined, undefined]);
    // a secret may be called "restore"
    expect(op('PUT', '/secrets/restore')).toEqual(['setSecret', 'restore', undefined]);
    expect(op('GET', '/secrets/restore')).toEqual(['getSecret', 'restore', undefined]);
  });

  it('maps the keys REST API, including crypto operations on the current version (empty version)', () => {
    const v = '0123456789abcdef0123456789abcdef';
    expect(op('POST', '/keys/a/create')).toEqual(['createKey', 'a', undefined]);
    expect(op('GET', '/keys/a')).toEqual(['getKey', 'a', undefined]);
    expect(op('GET', '/keys/a/')).toEqual(['getKey', 'a', '']);
    expect(op('GET', `/keys/a/${v}`)).toEqual(['getKey', 'a', v]);
    expect(op('PATCH', `/keys/a/${v}`)).toEqual(['updateKey', 'a', v]);
    expect(op('PATCH', '/keys/a/')).toEqual(['updateKey', 'a', '']);
    expect(op('GET', '/keys')).toEqual(['listKeys', undefined, undefined]);
    expect(op('GET', '/keys/a/versions')).toEqual(['listKeyVersions', 'a', undefined]);
    expect(op('DELETE', '/keys/a')).toEqual(['deleteKey', 'a', undefined]);
    expect(op('POST', '/keys/a/rotate')).toEqual(['rotateKey', 'a', undefined]);
    expect(op('GET', '/keys/a/rotationpolicy')).toEqual(['getKeyRotationPolicy', 'a', undefined]);
    expect(op('PUT', '/keys/a/rotationpolicy')).toEqual(['updateKeyRotationPolicy', 'a', undefined]);
    expect(op('POST', '/keys/a/backup')).toEqual(['backupKey', 'a', undefined]);
    expect(op('POST', '/keys/restore')).toEqual(['restoreKey', undefined, undefined]);
    expect(op('GET', '/deletedkeys')).toEqual(['listDeletedKeys', undefined, undefined]);
    expect(op('GET', '/deletedkeys/a')).toEqual(['getDeletedKey', 'a', undefined]);
    expect(op('DELETE', '/deletedkeys/a')).toEqual(['purgeDeletedKey', 'a', undefined]);
    expect(op('POST', '/deletedkeys/a/recover')).toEqual(['recoverDeletedKey', 'a', undefined]);
    for (const [path, name] of [
      ['sign', 'sign'],
      ['verify', 'verify'],
      ['encrypt', 'encrypt'],
      ['decrypt', 'decrypt'],
      ['wrapkey', 'wrapKey'],
      ['unwrapkey', 'unwrapKey'],
    ]) {
      expect(op('POST', `/keys/a/${v}/${path}`)).toEqual([name, 'a', v]);
      expect(op('POST', `/keys/a//${path}`)).toEqual([name, 'a', '']);
    }
    expect(op('GET', `/keys/a/${v}/sign`)).toEqual(['methodNotAllowed']);
    expect(op('POST', `/keys/a/${v}/launch`)).toEqual(['notFound']);
    expect(op('POST', `/keys/a/${v}/sign/x`)).toEqual(['notFound']);
    expect(op('PUT', '/keys/a/create')).toEqual(['methodNotAllowed']);
  });

  it('decodes percent-encoded names and rejects unknown paths and methods', () => {
    expect(op('GET', '/secrets/a%20b')).toEqual(['getSecret', 'a b', undefined]);
    expect(op('GET', '/certificates/a')).toEqual(['notFound']);
    expect(op('POST', '/secrets/a')).toEqual(['methodNotAllowed']);
    expect(op('GET', '/secrets/a/b/c')).toEqual(['notFound']);
    expect(op('GET', '/secrets/%E0%A4%A')).toEqual(['notFound']);
  });
});

describe('api-version', () => {
  it('accepts 2016-10-01, 7.0 … 7.6 (and previews) and 2025-07-01 … 2026-04-01', () => {
    for (const v of ['2016-10-01', '7.0', '7.1', '7.3', '7.4-preview.1', '7.6', '2025-07-01', '2026-04-01']) expect(isSupportedApiVersion(v)).toBe(true);
    for (const v of ['6.0', '7.7', '2016-10-02', '2025-06-30', '2026-04-02', '2027-01-01', 'latest', '7']) expect(isSupportedApiVersion(v)).toBe(false);
    // only the versions from 2025-07-01 on have outContentType
    expect(['2016-10-01', '7.6', '2025-07-01', '2026-01-01-preview'].map(isDatedApiVersion)).toEqual([false, false, true, true]);
    // recoverableDays from 7.1 on
    expect(['2016-10-01', '7.0', '7.0-preview', '7.1', '7.1-preview', '7.6', '2025-07-01'].map(hasRecoverableDays)).toEqual([false, false, false, true, true, true, true]);
    // exportable keys and release policies from 7.3-preview on
    expect(['2016-10-01', '7.2', '7.2-preview', '7.3-preview', '7.3', '7.6', '2025-07-01'].map(definesKeyRelease)).toEqual([false, false, false, true, true, true, true]);
    expect(() => assertApiVersion(null)).toThrow(/required/);
    expect(() => assertApiVersion('9.9')).toThrow(/not recognized/);
  });
});
