import { randomBytes, randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { DATABASE_KINDS } from '@app/testing';
import { Answer, hardenedApi } from './support/hardening';

/**
 * Regressions of what probing the API from outside found (issue #10), one file per theme (hardening-*.e2e-spec.ts).
 * Here: request bodies (nesting depth, media types and encodings, repeated members, OAuth token
 * responses, values and tags, sizes).
 * Each finding over real HTTP, on both databases; "writes nothing" is checked against every state row and the
 * vault's contents. The host and its callers: support/hardening.ts.
 */
describe.each(DATABASE_KINDS)('hardened HTTP API (bodies) on %s', (kind) => {
  const api = hardenedApi(kind);
  const { send, json, secret, store, refusedWithoutWrites, key, keyAdmin, revoker } = api;

  describe('1. deeply nested JSON', () => {
    it.each([
      ['an array 10,000 deep', '['.repeat(10_000) + ']'.repeat(10_000)],
      ['a value object 5,000 deep', `{"integrationId":"x","connectionId":"y","type":"custom_secret","value":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`],
      ['33 levels', '['.repeat(33) + ']'.repeat(33)],
    ])('answers 400 for %s on every body route, writing nothing', async (_, body) => {
      const { id } = await store();
      for (const [method, path] of [
        ['POST', '/v1/credentials'],
        ['POST', `/v1/credentials/${id}/rotate`],
        ['PATCH', `/v1/credentials/${id}`],
        ['POST', '/v1/credentials/delete-batch'],
        ['POST', '/v1/oauth/connections/prov/c1/tokens'],
        ['POST', '/v1/oauth/connections/prov/c1/token-rejected'],
      ]) {
        const r = await refusedWithoutWrites(400, () => send(method, path, { body, contentType: 'application/json' }));
        expect(r.body.message).toMatch(/nests deeper than 32 levels/);
      }
      expect(api.host.logs.join('\n')).not.toMatch(/Maximum call stack/);
    });

    it('still accepts a body nested 32 levels deep', async () => {
      const r = await send('POST', '/v1/credentials', { body: '['.repeat(32) + ']'.repeat(32), contentType: 'application/json' });
      expect(r.body.message).toBe('request body must be a JSON object');
    });
  });

  describe('2. a refused OAuth token response writes nothing', () => {
    it.each([
      ['expires_in 1e308', { expires_in: 1e308 }],
      ['expires_in "0x10"', { expires_in: '0x10' }],
      ['expires_in -1', { expires_in: -1 }],
      ['a 30 KB access token', { access_token: `AT-${'a'.repeat(30_000)}` }],
      ['a refresh token with a lone surrogate', { refresh_token: 'RT-\ud800-1' }],
      ['an access token with a newline', { access_token: 'AT-1\nAT-2' }],
    ])('%s → 400, no credential, version or vault secret', async (_, over) => {
      await refusedWithoutWrites(400, () => json('POST', `/v1/oauth/connections/prov/c-${randomBytes(3).toString('hex')}/tokens`, { access_token: 'AT-1', refresh_token: 'RT-1', ...over }));
    });

    it('on an existing connection, too: the stored tokens stay current', async () => {
      const path = '/v1/oauth/connections/prov/existing/tokens';
      expect((await json('POST', path, { access_token: 'AT-first', refresh_token: 'RT-first', expires_in: 3600 })).status).toBe(201);
      await refusedWithoutWrites(400, () => json('POST', path, { access_token: `AT-${'b'.repeat(30_000)}`, refresh_token: 'RT-second', expires_in: 3600 }));
      const token = await send('GET', '/v1/oauth/connections/prov/existing/access-token');
      expect(token.body.accessToken).toBe('AT-first');
    });
  });

  describe('3. error messages never repeat request values', () => {
    it('a form-encoded body is 415 and the answer does not contain the value', async () => {
      const value = secret();
      const body = JSON.stringify({ integrationId: 'x', connectionId: 'y', type: 'api_key', value });
      for (const contentType of ['application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x', 'application/xml']) {
        const r = await refusedWithoutWrites(415, () => send('POST', '/v1/credentials', { body, contentType }));
        expect(r.text).not.toContain(value);
      }
      const { id } = await store();
      const r = await refusedWithoutWrites(415, () => send('POST', `/v1/credentials/${id}/rotate`, { body: `value=${value}`, contentType: 'application/x-www-form-urlencoded' }));
      expect(r.text).not.toContain(value);
    });

    it('a body with a Content-Encoding is 415 (not decoded here: a gzip body was stored as its compressed bytes)', async () => {
      const value = secret();
      const body = JSON.stringify({ integrationId: 'x', connectionId: 'enc', type: 'api_key', value });
      for (const contentEncoding of ['gzip', 'br', 'deflate, gzip']) {
        const r = await refusedWithoutWrites(415, () => send('POST', '/v1/credentials', { body, contentType: 'application/json', contentEncoding }));
        expect(r.body.message).toBe('request bodies must not be compressed (Content-Encoding)');
        expect(r.text).not.toContain(value);
      }
      expect((await send('POST', '/v1/credentials', { body, contentType: 'application/json', contentEncoding: 'identity' })).status).toBe(201);
    });

    it('an unknown property is never named; a near miss of a declared field gets the declared name', async () => {
      const value = secret();
      const r = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'api_key', value: 'ok-value-1', [value]: '' }));
      expect(r.text).not.toContain(value);
      expect(r.body.message).toContain('the body has a property that is not accepted');
      const typo = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'api_key', value: 'ok-value-2', expiresat: '2030-01-01T00:00:00Z' }));
      expect(typo.body.message).toContain('the body has a property that is not accepted (did you mean expiresAt?)');
      expect(typo.text).not.toContain('expiresat');
      const named = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'api_key', value: 'ok-value-4', constructorzq: 1 }));
      expect(named.text).not.toContain('constructorzq');
    });

    it('a property named like a member of every object (toString, valueOf, …) is refused like any unknown one, not silently dropped', async () => {
      // class-transformer skips a key the DTO instance inherits a method for, so the whitelist never saw it: 201.
      for (const name of ['toString', 'valueOf', 'hasOwnProperty', '__defineGetter__', 'isPrototypeOf']) {
        const r = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'api_key', value: 'ok-value-5', [name]: 'x' }));
        expect(r.body.message).toEqual(['the body has a property that is not accepted']);
        await refusedWithoutWrites(400, () => send('POST', '/v1/rotation/revoke', { body: JSON.stringify({ integrationId: 'x', reason: 'leak', [name]: 1 }), contentType: 'application/json', apiKey: revoker.key }));
      }
    });

    it('tag keys and values are not echoed', async () => {
      const value = secret();
      const r = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'api_key', value: 'ok-value-3', tags: { [`${value} `]: 'v' } }));
      expect(r.text).not.toContain(value);
    });

    it('a body that is not UTF-8 is 400, not silently repaired', async () => {
      const body = Buffer.concat([Buffer.from('{"integrationId":"x","connectionId":"y","type":"custom_secret","value":"a'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
      const r = await refusedWithoutWrites(400, () => send('POST', '/v1/credentials', { body, contentType: 'application/json' }));
      expect(r.body.message).toBe('request body is not valid UTF-8');
    });
  });

  it('5. a value with a lone surrogate is refused (400), never stored to come back changed', async () => {
    const r = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'custom_secret', value: 'abc\ud800def' }));
    expect(r.body.message).toEqual(expect.stringContaining('well-formed Unicode'));
    const { id } = await store();
    await refusedWithoutWrites(400, () => json('POST', `/v1/credentials/${id}/rotate`, { value: 'x\udc00y' }));
    await refusedWithoutWrites(400, () => json('PATCH', `/v1/credentials/${id}`, { tags: { env: 'p\ud800' } }));
  });

  it('5b. a tag value holding NUL or another control character is 400 naming the tag by position (PostgreSQL cannot store NUL), writing nothing', async () => {
    const { id } = await store({ tags: { env: 'prod' } });
    for (const bad of ['p\u0000', 'two\nlines', 'del\u007f']) {
      const stored = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'api_key', value: secret(), tags: { env: 'prod', note: bad } }));
      const patched = await refusedWithoutWrites(400, () => json('PATCH', `/v1/credentials/${id}`, { tags: { note: bad } }));
      for (const r of [stored, patched]) expect({ bad, code: r.body.codeName, message: r.body.message }).toEqual({ bad, code: 'VALIDATION', message: expect.stringContaining('tag #') });
    }
  });

  it('7. token-rejected with a null (or non-object) body is 400 and refreshes nothing', async () => {
    for (const body of ['null', '[]', '"AT-1"', '42']) {
      const r = await refusedWithoutWrites(400, () => send('POST', '/v1/oauth/connections/prov/c1/token-rejected', { body, contentType: 'application/json' }));
      expect(r.body.message).toBe('request body must be a JSON object');
    }
  });

  it('8. an unauthenticated request is 401 whatever its body', async () => {
    for (const [body, contentType] of [
      ['{not json', 'application/json'],
      ['['.repeat(10_000), 'application/json'],
      ['value=x', 'application/x-www-form-urlencoded'],
      [Buffer.from([0xff, 0xfe]), 'application/json'],
    ] as const) {
      const r = await refusedWithoutWrites(401, () => send('POST', '/v1/credentials', { body, contentType, apiKey: null }));
      expect(r.body.error).toBe('UNAUTHORIZED');
      expect((await send('POST', '/v1/credentials', { body, contentType, apiKey: 'cvk_nobody_invalid' })).status).toBe(401);
    }
    // A 401 names the ways to authenticate (RFC 9110 §11.6.1).
    const res = await fetch(`${api.base}/v1/credentials`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="credential-vault", ApiKey realm="credential-vault", header="X-API-Key"');
  });

  it('20. a GET with a body is 400, like any body a route does not declare: it was never read (a filter sent there listed every credential)', async () => {
    const { id } = await store({ integrationId: 'get-body' });
    /** node:http, not fetch: fetch refuses to send a GET with a body. Framed by Content-Length unless chunked is asked for. */
    const get = (path: string, body: string, headers: Record<string, string> = {}) =>
      new Promise<Answer>((resolve, reject) => {
        const framing = headers['transfer-encoding'] ? {} : { 'content-length': String(Buffer.byteLength(body)) };
        const req = request(`${api.base}${path}`, { method: 'GET', headers: { 'x-api-key': key.key, 'content-type': 'application/json', ...framing, ...headers } }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve({ status: res.statusCode ?? 0, text, body: JSON.parse(text) as Answer['body'] }));
        });
        req.on('error', reject);
        req.end(body);
      });
    for (const [path, body, headers] of [
      ['/v1/credentials', JSON.stringify({ integrationId: 'none-such' }), {}],
      [`/v1/credentials/${id}/value`, JSON.stringify({ allowExpired: true }), {}],
      ['/v1/credentials', '{"integrationId":"none-such"}', { 'transfer-encoding': 'chunked' }],
    ] as const) {
      const r = await refusedWithoutWrites(400, () => get(path, body, headers));
      expect(r.body.message).toBe('this route takes no request body');
    }
    // Without a body it is served as before.
    expect((await get('/v1/credentials?integrationId=get-body', '')).status).toBe(200);
  });

  it('21. a key restore takes the 1 MiB backup its schema allows (a 10-version RSA-4096 key backs up to 76 KB): a forged one is 400, not 413 at 256 KiB', async () => {
    const restore = (bytes: number) =>
      send('POST', '/v1/keys/restore', { body: JSON.stringify({ backup: randomBytes(bytes).toString('base64url') }), contentType: 'application/json', apiKey: keyAdmin.key });
    for (const bytes of [300 * 1024, 1024 * 1024]) {
      const r = await refusedWithoutWrites(400, () => restore(bytes));
      expect(r.body.codeName).toBe('INVALID_KEY_BACKUP');
    }
    // Past what the schema allows the body is still bounded.
    expect((await restore(2 * 1024 * 1024)).status).toBe(413);
  });

  it('13. a tag named like a member of every object (toString, valueOf, …) is stored, not silently dropped; constructor and prototype are 400', async () => {
    // class-transformer skipped keys an object inherits a method for, and Nest's ValidationPipe deletes
    // `constructor` and `prototype` keys at any depth: a 201/200 answered without those tags.
    const tags = { toString: 't', valueOf: 'v', hasOwnProperty: 'h', __defineGetter__: 'g', isPrototypeOf: 'i', plain: 'p' };
    const created = await json('POST', '/v1/credentials', { integrationId: 'github', connectionId: `c-${randomBytes(4).toString('hex')}`, type: 'api_key', value: secret(), tags });
    expect(created.status).toBe(201);
    expect(created.body.tags).toEqual(tags);
    const id = created.body.id as string;
    expect((await send('GET', `/v1/credentials/${id}`)).body.tags).toEqual(tags);
    const replaced = { toLocaleString: 'l', propertyIsEnumerable: 'e' };
    expect((await json('PATCH', `/v1/credentials/${id}`, { tags: replaced })).body.tags).toEqual(replaced);
    expect((await send('GET', `/v1/credentials/${id}`)).body.tags).toEqual(replaced);

    const name = `tags-${randomBytes(3).toString('hex')}`;
    const keyJson = (method: string, path: string, body: unknown) => send(method, path, { body: JSON.stringify(body), contentType: 'application/json', apiKey: keyAdmin.key });
    const keyCreated = await keyJson('POST', '/v1/keys', { name, type: 'EC', curve: 'P-256', tags });
    expect(keyCreated.status).toBe(201);
    expect(keyCreated.body.tags).toEqual(tags);
    expect((await send('GET', `/v1/keys/${name}`, { apiKey: keyAdmin.key })).body.tags).toEqual(tags);
    expect((await keyJson('PATCH', `/v1/keys/${name}`, { tags: replaced })).body.tags).toEqual(replaced);

    for (const forbidden of ['constructor', 'prototype']) {
      const r = await refusedWithoutWrites(400, () => json('PATCH', `/v1/credentials/${id}`, { tags: { [forbidden]: 'x', plain: 'p' } }));
      expect(r.body.message).toMatch(/forbidden key/);
      await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'github', connectionId: 'c-forbidden', type: 'api_key', value: secret(), tags: { [forbidden]: 'x' } }));
      expect((await keyJson('PATCH', `/v1/keys/${name}`, { tags: { [forbidden]: 'x' } })).status).toBe(400);
    }
    expect((await send('GET', `/v1/credentials/${id}`)).body.tags).toEqual(replaced);
    expect((await send('GET', `/v1/keys/${name}`, { apiKey: keyAdmin.key })).body.tags).toEqual(replaced);
  });

  it('14. a body that repeats a member name in one object is 400 (which one counts is up to each parser), never the last one silently', async () => {
    const { id, rowVersion } = await store();
    const first = secret();
    const second = secret();
    const create = (members: string) => send('POST', '/v1/credentials', { body: `{"integrationId":"github","connectionId":"dup","type":"api_key",${members}}`, contentType: 'application/json' });
    for (const members of [`"value":"${first}","value":"${second}"`, `"value":"${first}","v\\u0061lue":"${second}"`, `"value":"${first}","tags":{"a":"1","b":"2","a":"3"}`]) {
      const r = await refusedWithoutWrites(400, () => create(members));
      expect(r.body.message).toBe('request body repeats a member name within one object');
      expect(r.text).not.toContain(first);
      expect(r.text).not.toContain(second);
    }
    // A compare-and-set that a proxy reads as one version and the host as another.
    const patch = `{"tags":{"k":"v"},"expectedVersion":${rowVersion},"expectedVersion":${rowVersion + 5}}`;
    await refusedWithoutWrites(400, () => send('PATCH', `/v1/credentials/${id}`, { body: patch, contentType: 'application/json' }));
    // The same name in different objects, or as a value, is no repeat.
    const ok = await create(`"value":"value","tags":{"value":"integrationId","type":"x"}`);
    expect(ok.status).toBe(201);
  });

  it('9. a batch delete with one malformed id is 400 and deletes nothing; unknown well-formed ids are reported', async () => {
    const { id } = await store();
    const r = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials/delete-batch', { ids: [id, 'not-a-uuid'] }));
    expect(r.text).not.toContain('not-a-uuid');
    expect((await send('GET', `/v1/credentials/${id}`)).status).toBe(200);
    const unknown = randomUUID();
    const ok = await json('POST', '/v1/credentials/delete-batch', { ids: [id, unknown] });
    expect(ok.body).toEqual({ deleted: [id], notFound: [unknown] });
  });
});
