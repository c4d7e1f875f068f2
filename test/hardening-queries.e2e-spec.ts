import { randomBytes, randomUUID } from 'node:crypto';
import { AuditService } from '@app/audit';
import { DATABASE_KINDS } from '@app/testing';
import { hardenedApi } from './support/hardening';
import { stateSnapshot } from './support/state-snapshot';

/**
 * Regressions of what probing the API from outside found (issue #10), one file per theme (hardening-*.e2e-spec.ts).
 * Here: what the OpenAPI document declares, query strings and list cursors.
 * Each finding over real HTTP, on both databases; "writes nothing" is checked against every state row and the
 * vault's contents. The host and its callers: support/hardening.ts.
 */
describe.each(DATABASE_KINDS)('hardened HTTP API (queries) on %s', (kind) => {
  const api = hardenedApi(kind);
  const { send, json, secret, store, refusedWithoutWrites, key, auditor, revoker, keyAdmin, rotationAdmin, otherTenant } = api;

  describe('6. only what the OpenAPI document says is accepted', () => {
    it.each([true, 123, -1, '2030-01-01T00:00:00Z\u0000', '2030-02-30T00:00:00Z', '2030-01-01', 'tomorrow', ''])('expiresAt %p on store → 400', async (expiresAt) => {
      await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'api_key', value: 'value-123456', expiresAt }));
    });

    it('expectedVersion must be a JSON integer', async () => {
      const { id } = await store();
      for (const expectedVersion of [true, '1', 1.5, 0, -1, '0x1']) {
        await refusedWithoutWrites(400, () => json('POST', `/v1/credentials/${id}/rotate`, { value: secret(), expectedVersion }));
        await refusedWithoutWrites(400, () => json('PATCH', `/v1/credentials/${id}`, { tags: {}, expectedVersion }));
      }
      for (const q of ['0x1', '1e0', '', ' 1', '+1', '1.0']) {
        await refusedWithoutWrites(400, () => send('DELETE', `/v1/credentials/${id}?expectedVersion=${encodeURIComponent(q)}`));
      }
    });

    it('a JSON integer past 2^53 − 1 is 400 naming its range, never rounded to another number (…993 was taken as …992)', async () => {
      const { id } = await store();
      const rotator = { apiKey: rotationAdmin.key, contentType: 'application/json' };
      for (const big of ['9007199254740993', '1e23']) {
        for (const [method, path, body, init] of [
          ['POST', `/v1/credentials/${id}/rotate`, `{"value":"${secret()}","expectedVersion":${big}}`, {}],
          ['PATCH', `/v1/credentials/${id}`, `{"tags":{},"expectedVersion":${big}}`, {}],
          ['POST', `/v1/credentials/${id}/rollback`, `{"version":${big}}`, {}],
          ['POST', `/v1/rotation/credentials/${id}/rotate`, `{"value":"${secret()}","expectedVersion":${big}}`, rotator],
          ['POST', `/v1/rotation/credentials/${id}/rollback`, `{"version":${big}}`, rotator],
          ['PUT', '/v1/rotation/policies', `{"level":"tenant","rotateAfterDays":5,"expectedVersion":${big}}`, rotator],
          ['PUT', '/v1/rotation/notifications/settings', `{"emailRecipients":[],"expectedRowVersion":${big}}`, rotator],
        ] as const) {
          const r = await refusedWithoutWrites(400, () => send(method, path, { body, contentType: 'application/json', ...init }));
          expect(r.body.message).toEqual([expect.stringMatching(/^(expectedVersion|version|expectedRowVersion) must be an integer from [01] to 9007199254740991 \(a JSON number\)$/)]);
        }
      }
      // The largest exact one is still a version like any other: the compare-and-set answers, it does not refuse.
      expect((await send('PATCH', `/v1/credentials/${id}`, { body: '{"tags":{},"expectedVersion":9007199254740991}', contentType: 'application/json' })).status).toBe(409);
    });

    it('an explicit null in a field the OpenAPI document does not mark nullable is 400 naming the field, writing nothing; where it is nullable, null keeps its meaning', async () => {
      const { id, rowVersion } = await store({ tags: { team: 'core' } });
      const as = (apiKey: string) => ({ apiKey, contentType: 'application/json' });
      const mine = as(key.key);
      const rotator = as(rotationAdmin.key);
      const cases: Array<[string, string, Record<string, unknown>, { apiKey: string; contentType: string }, string]> = [
        ['POST', '/v1/credentials', { integrationId: 'github', connectionId: 'c-null', type: 'api_key', value: secret(), tags: null }, mine, 'tags'],
        ['POST', '/v1/credentials', { integrationId: 'github', connectionId: 'c-null', type: 'api_key', value: secret(), expiresAt: null }, mine, 'expiresAt'],
        ['POST', '/v1/credentials', { integrationId: 'github', connectionId: 'c-null', type: 'api_key', value: secret(), valueStore: null }, mine, 'valueStore'],
        ['POST', '/v1/credentials', { integrationId: 'github', connectionId: 'c-null', type: 'api_key', value: null }, mine, 'value'],
        ['PATCH', `/v1/credentials/${id}`, { tags: null }, mine, 'tags'],
        ['PATCH', `/v1/credentials/${id}`, { status: null }, mine, 'status'],
        // A null compare-and-set taken as absent wrote unconditionally.
        ['PATCH', `/v1/credentials/${id}`, { tags: { team: 'ops' }, expectedVersion: null }, mine, 'expectedVersion'],
        ['POST', `/v1/credentials/${id}/rotate`, { value: secret(), expectedVersion: null }, mine, 'expectedVersion'],
        ['POST', `/v1/rotation/credentials/${id}/rotate`, { value: null }, rotator, 'value'],
        ['POST', `/v1/rotation/credentials/${id}/rotate`, { value: secret(), reason: null }, rotator, 'reason'],
        ['POST', `/v1/rotation/credentials/${id}/rollback`, { version: 1, reason: null }, rotator, 'reason'],
        ['PUT', '/v1/rotation/policies', { level: 'tenant', rotateAfterDays: 30, expectedVersion: null }, rotator, 'expectedVersion'],
        ['PUT', '/v1/rotation/policies', { level: 'tenant', target: null, rotateAfterDays: 30 }, rotator, 'target'],
        ['POST', '/v1/rotation/revoke', { credentialId: id, tenant: null, reason: 'leak' }, as(revoker.key), 'tenant'],
        ['POST', '/v1/rotation/revoke', { credentialId: id, reason: 'leak', severity: null }, as(revoker.key), 'severity'],
        ['PUT', '/v1/rotation/notifications/settings', { emailRecipients: null }, rotator, 'emailRecipients'],
        ['PUT', '/v1/rotation/notifications/settings', { emailRecipients: [], generateWebhookSecret: null }, rotator, 'generateWebhookSecret'],
        ['POST', '/v1/keys', { name: `k-null-${kind}`, type: 'EC', tags: null }, as(keyAdmin.key), 'tags'],
        ['POST', '/v1/oauth/connections/prov/c1/token-rejected', { accessToken: null }, mine, 'accessToken'],
      ];
      for (const [method, path, body, init, field] of cases) {
        const r = await refusedWithoutWrites(400, () => send(method, path, { body: JSON.stringify(body), ...init }));
        expect({ method, path, field, message: r.body.message }).toEqual({ method, path, field, message: expect.arrayContaining([expect.stringMatching(new RegExp(`^${field} must not be null`))]) });
      }
      // Documented nulls: an expiry cleared, a policy field inherited, the webhook removed.
      const cleared = await json('PATCH', `/v1/credentials/${id}`, { expiresAt: null, expectedVersion: rowVersion });
      expect({ status: cleared.status, expiresAt: cleared.body.expiresAt ?? null }).toEqual({ status: 200, expiresAt: null });
      expect((await send('PUT', '/v1/rotation/policies', { body: JSON.stringify({ level: 'tenant', rotateAfterDays: null, warnBeforeDays: 7, rotation: null }), ...rotator })).status).toBe(200);
      expect((await send('PUT', '/v1/rotation/notifications/settings', { body: JSON.stringify({ webhookUrl: null }), ...rotator })).status).toBe(200);
    });

    it('a null inside a list or a tag map is 400 naming the field and the position, writing nothing (their items are never nullable)', async () => {
      const { id } = await store({ tags: { team: 'core' } });
      const as = (apiKey: string) => ({ apiKey, contentType: 'application/json' });
      const cases: Array<[string, string, Record<string, unknown>, { apiKey: string; contentType: string }, string]> = [
        ['POST', '/v1/credentials', { integrationId: 'github', connectionId: 'c-null', type: 'api_key', value: secret(), tags: { team: 'core', env: null } }, as(key.key), 'tags #2'],
        ['PATCH', `/v1/credentials/${id}`, { tags: { team: null } }, as(key.key), 'tags #1'],
        ['POST', '/v1/credentials/delete-batch', { ids: [id, null] }, as(key.key), 'ids #2'],
        // 'an e-mail address is at most 254 characters' before, for a null.
        ['PUT', '/v1/rotation/notifications/settings', { emailRecipients: ['ops@example.com', null] }, as(rotationAdmin.key), 'emailRecipients #2'],
        ['POST', '/v1/keys', { name: `k-null-${kind}`, type: 'EC', keyOps: ['sign', null] }, as(keyAdmin.key), 'keyOps #2'],
        ['PATCH', '/v1/keys/nokey', { tags: { t: null } }, as(keyAdmin.key), 'tags #1'],
      ];
      for (const [method, path, body, init, field] of cases) {
        const r = await refusedWithoutWrites(400, () => send(method, path, { body: JSON.stringify(body), ...init }));
        expect({ method, path, message: r.body.message }).toEqual({ method, path, message: [`${field} must not be null`] });
      }
    });

    it.each([
      '/v1/credentials?limit=0x10',
      '/v1/credentials?limit=',
      '/v1/credentials?limit=1e1',
      '/v1/credentials?limit=10&limit=20',
      '/v1/credentials?expiringBefore=2030-01-01T00:00:00Z%00',
      '/v1/credentials?expiringBefore=1',
      '/v1/credentials/expiring?days=0x1f',
      '/v1/credentials/expiring?days=',
      '/v1/credentials/expiring?days=-1',
      '/v1/oauth/connections/prov/c1/access-token?minValidityMs=',
      '/v1/oauth/connections/prov/c1/access-token?minValidityMs=0x10',
      `/v1/credentials/${randomUUID()}/versions/0x1/value`,
      `/v1/credentials/${randomUUID()}/versions/1e0/value`,
      `/v1/credentials/${randomUUID()}/versions/0/value`,
      `/v1/credentials/${randomUUID()}/value?allowExpired=1`,
      '/v1/credentials?status=deleted', // deleted credentials are never listed: the filter could match nothing
    ])('GET %s → 400', async (path) => {
      await refusedWithoutWrites(400, () => send('GET', path));
    });

    it('a query parameter or a body the route does not declare is 400, never ignored (a PATCH ?expectedVersion= wrote without its compare-and-set)', async () => {
      const { id, rowVersion } = await store();
      await json('PATCH', `/v1/credentials/${id}`, { tags: { a: '1' }, expectedVersion: rowVersion });
      // A stale version given where this route does not read it: refused, not a silent unconditional write.
      const stale = await refusedWithoutWrites(400, () => json('PATCH', `/v1/credentials/${id}?expectedVersion=${rowVersion}`, { tags: { a: '2' } }));
      expect(stale.body.message).toBe('this route takes no query parameters');
      await refusedWithoutWrites(400, () => send('GET', `/v1/credentials/${id}?bogus=1`));
      // DELETE reads expectedVersion from the query: in a body it was ignored, and the delete unconditional.
      const body = await refusedWithoutWrites(400, () => json('DELETE', `/v1/credentials/${id}`, { expectedVersion: rowVersion }));
      expect(body.body.message).toBe('this route takes no request body');
      const named = await refusedWithoutWrites(400, () => send('GET', `/v1/oauth/connections/prov/c1/access-token?minValidityMs=1&secretName=x`));
      expect(named.body.message).not.toContain('secretName');
      // Declared ones still work.
      expect((await send('DELETE', `/v1/credentials/${id}?expectedVersion=${rowVersion + 1}`)).status).toBe(204);
    });

    it('HEAD is not an implicit twin of GET: on a value route it reads nothing and audits nothing (405, Allow: GET)', async () => {
      const { id } = await store();
      const audit = api.host.app.get(AuditService);
      await audit.flush();
      const reads = async () => (await audit.query({ tenantId: 'acme', resource: id, action: ['read'], limit: 100 })).items.length;
      const before = await reads();
      for (const path of [`/v1/credentials/${id}/value`, `/v1/credentials/${id}/versions/1/value`, '/v1/oauth/connections/prov/c1/access-token']) {
        expect((await send('HEAD', path)).status).toBe(405);
      }
      await audit.flush();
      expect(await reads()).toBe(before);
    });

    it('the audit query takes RFC 3339 dates and decimal limits only', async () => {
      for (const q of ['from=2030-01-01T00:00:00Z%00', 'to=true', 'from=2030-13-01T00:00:00Z', 'limit=0x10', 'limit=']) {
        await refusedWithoutWrites(400, () => send('GET', `/v1/audit?${q}`, { apiKey: auditor.key }));
      }
      expect((await send('GET', '/v1/audit?from=2020-01-01T00:00:00Z&limit=5', { apiKey: auditor.key })).status).toBe(200);
    });

    it('an empty or over-long action list, an empty resource or actorId: 400 VALIDATION_FAILED naming the field, as the other audit query fields', async () => {
      const lots = Array.from({ length: 51 }, (_, i) => `a${i}`).join(',');
      for (const [q, field] of [['action=', 'action'], ['action=,', 'action'], [`action=${lots}`, 'action'], ['resource=', 'resource'], ['actorId=', 'actorId']]) {
        const r = await refusedWithoutWrites(400, () => send('GET', `/v1/audit?${q}`, { apiKey: auditor.key }));
        expect([q, r.body.code, r.body.codeName]).toEqual([q, 90001, 'VALIDATION_FAILED']);
        expect(r.body.message).toEqual([expect.stringMatching(new RegExp(`^${field} must `))]);
        expect(JSON.stringify(r.body.message)).not.toContain('^[a-z]');
      }
    });

    it('an audit time range that ends before it starts is 400 AUDIT_INVALID_QUERY, not an empty page that reads as "nothing happened"', async () => {
      await store();
      await api.host.app.get(AuditService).flush();
      const page = (q: string) => send('GET', `/v1/audit?${q}`, { apiKey: auditor.key });
      // The instants are compared, not the text: 09:00+10:00 is 23:00Z the day before.
      for (const q of ['from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z', 'from=2026-01-01T00:00:00Z&to=2026-01-01T09:00:00%2B10:00']) {
        const r = await refusedWithoutWrites(400, () => page(q));
        expect([r.body.code, r.body.codeName, r.body.message]).toEqual([5004, 'AUDIT_INVALID_QUERY', 'from must not be after to (to is exclusive)']);
      }
      // Equal bounds are an empty range (to is exclusive), and the same bounds the right way round find the rows.
      expect([(await page('from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z')).status, (await page('from=2026-01-01T09:00:00%2B10:00&to=2026-01-01T00:00:00Z')).status]).toEqual([200, 200]);
      expect(((await page('from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&limit=1')).body.items as unknown[]).length).toBe(1);
    });
  });

  it('15. a list route refuses a query parameter it does not declare, named as a query parameter — constructor, prototype, __proto__ and every other name an object inherits (toString, valueOf, …) too (they were ignored)', async () => {
    for (const q of ['bogus=1', 'constructor=1', 'prototype=1', '__proto__=1', 'limit=5&constructor=1', 'toString=1', 'valueOf=1', 'hasOwnProperty=1', '__defineGetter__=1', 'limit=5&isPrototypeOf=1']) {
      const r = await refusedWithoutWrites(400, () => send('GET', `/v1/credentials?${q}`));
      expect(r.body.message).toEqual(['the query has a parameter that is not accepted']);
    }
    const typo = await refusedWithoutWrites(400, () => send('GET', '/v1/credentials/expiring?dayz=1'));
    expect(typo.body.message).toEqual(['the query has a parameter that is not accepted (did you mean days?)']);
    expect((await send('GET', '/v1/credentials?limit=5')).status).toBe(200);
  });

  it('17. a list cursor the server did not write is 400 with the invalid-cursor error, never another page', async () => {
    const b64u = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v), 'utf8').toString('base64url');
    const unb64u = (c: string): unknown => JSON.parse(Buffer.from(c, 'base64url').toString('utf8'));
    const beyondDates = 8_640_000_000_000_001; // one ms past the last instant a JavaScript Date holds
    /** Each forged cursor's answer: status, error code and whether the message speaks of the cursor. Writes nothing. */
    const answers = async (path: string, apiKey: string, forged: Record<string, string>) => {
      const out: Record<string, unknown> = {};
      for (const [name, cursor] of Object.entries(forged)) {
        const before = await stateSnapshot(api.host.app);
        const r = await send('GET', `${path}${path.includes('?') ? '&' : '?'}cursor=${encodeURIComponent(cursor)}`, { apiKey });
        out[name] = [r.status, r.body.code, /cursor/i.test(JSON.stringify(r.body.message))];
        expect(await stateSnapshot(api.host.app)).toEqual(before);
      }
      return out;
    };
    const refusedAll = (forged: Record<string, string>, code: number) => Object.fromEntries(Object.keys(forged).map((name) => [name, [400, code, true]]));

    // Credentials: [createdAt, id].
    const integrationId = `cursor-${randomBytes(3).toString('hex')}`;
    for (let i = 0; i < 3; i++) await store({ integrationId });
    const list = `/v1/credentials?integrationId=${integrationId}&limit=1`;
    const first = await send('GET', list);
    const next = first.body.nextCursor as string;
    const [createdAt, id] = unb64u(next) as [number, string];
    const second = await send('GET', `${list}&cursor=${encodeURIComponent(next)}`);
    expect(second.status).toBe(200);
    expect((second.body.items as Array<{ id: string }>)[0].id).not.toBe(id);
    const badCode = (await send('GET', `${list}&cursor=bm90LWEtY3Vyc29y`)).body.code as number;
    const credentialCursors = {
      'a trailing element': b64u([createdAt, id, 'extra']),
      'an upper-case id': b64u([createdAt, id.toUpperCase()]),
      'a date past Date': b64u([beyondDates, id]),
      'spaced JSON': b64u(`[ ${createdAt}, "${id}" ]`),
      'a trailing =': `${next}=`,
      'a character outside base64url': `${next}!`,
    };
    const credentials = await answers(list, key.key, credentialCursors);

    // The audit trail: by sequence (a tenant's chain), and by (occurredAt, id) over a time range.
    const audit = '/v1/audit?limit=1';
    const byTime = '/v1/audit?limit=1&from=2000-01-01T00:00:00Z';
    const seqCursor = (await send('GET', audit, { apiKey: auditor.key })).body.nextCursor as string;
    const timeCursor = (await send('GET', byTime, { apiKey: auditor.key })).body.nextCursor as string;
    const [, , sequence] = unb64u(seqCursor) as [string, string, number];
    const [, , occurredAt, rowId] = unb64u(timeCursor) as [string, string, number, string];
    const seqCursors = { 'sequence 0': b64u(['d', 's', 0]), 'a negative sequence': b64u(['d', 's', -sequence]), 'sequence as 5.0': b64u(`["d","s",${sequence}.0]`), 'a trailing =': `${seqCursor}=` };
    const bySequence = await answers(audit, auditor.key, seqCursors);
    const timeCursors = {
      'an upper-case id': b64u(['d', 't', occurredAt, rowId.toUpperCase()]),
      'a date past Date': b64u(['d', 't', beyondDates, rowId]),
      'an id that is no UUID': b64u(['d', 't', occurredAt, 'not-a-row-id']),
    };
    const byInstant = await answers(byTime, auditor.key, timeCursors);

    // Keys: { l: the vault's continuation, s: matches of its page already answered }.
    const keyCursors = { 'an extra member': b64u({ s: 0, x: 1 }), 'spaced JSON': b64u('{ "s": 0 }'), 'a trailing =': `${b64u({ s: 0 })}=` };
    const keys = await answers('/v1/keys', keyAdmin.key, keyCursors);
    expect({ credentials, bySequence, byInstant, keys }).toEqual({
      credentials: refusedAll(credentialCursors, badCode),
      bySequence: refusedAll(seqCursors, 5004),
      byInstant: refusedAll(timeCursors, 5004),
      keys: refusedAll(keyCursors, 10005),
    });
  });

  // An edited cursor that is well formed (another position, another tenant's cursor) is not refused: it only says where
  // to resume. The tenant and the filters come from the caller and the query, never from the cursor.
  it('17b. a well-formed cursor, edited or another tenant\'s, pages only the caller\'s own tenant and filters', async () => {
    const b64u = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8').toString('base64url');
    type Page = { items: Array<Record<string, unknown>>; nextCursor?: string };
    const page = async (apiKey: string, path: string) => {
      const r = await send('GET', path, { apiKey });
      expect(r.status).toBe(200);
      return r.body as unknown as Page;
    };
    const integrationId = `xt-${randomBytes(3).toString('hex')}`;
    const storeAs = async (apiKey: string, connectionId: string, integration = integrationId) => {
      const r = await send('POST', '/v1/credentials', { apiKey, contentType: 'application/json', body: JSON.stringify({ integrationId: integration, connectionId, type: 'api_key', value: secret() }) });
      expect(r.status).toBe(201);
      return r.body.id as string;
    };
    const mine = [await storeAs(key.key, 'a1'), await storeAs(key.key, 'a2')];
    await storeAs(key.key, 'a3', `${integrationId}-else`);
    for (const c of ['o1', 'o2', 'o3']) await storeAs(otherTenant.key, c);
    const list = `/v1/credentials?integrationId=${integrationId}&limit=5`;
    // The other tenant's cursor, and a cursor edited to the start of time: the caller's own matching rows only.
    const theirCursor = (await page(otherTenant.key, `/v1/credentials?integrationId=${integrationId}&limit=1`)).nextCursor as string;
    expect((await page(key.key, `${list}&cursor=${encodeURIComponent(theirCursor)}`)).items.map((c) => c.id).filter((id) => !mine.includes(id as string))).toEqual([]);
    expect((await page(key.key, `${list}&cursor=${encodeURIComponent(b64u([0, '00000000-0000-0000-0000-000000000000']))}`)).items.map((c) => c.id)).toEqual(mine);
    // The audit trail: another tenant's chain position, or a sequence edited past every row, reads the caller's rows.
    const theirAuditCursor = (await page(otherTenant.key, '/v1/audit?limit=1')).nextCursor as string;
    for (const cursor of [theirAuditCursor, b64u(['d', 's', Number.MAX_SAFE_INTEGER])]) {
      const rows = (await page(auditor.key, `/v1/audit?limit=50&cursor=${encodeURIComponent(cursor)}`)).items;
      expect(rows.length).toBeGreaterThan(0);
      expect(new Set(rows.map((row) => row.tenantId))).toEqual(new Set(['acme']));
    }
  });

  it('18. a query string whose percent-encoding is not UTF-8 (or malformed) is 400 on every route, never a silently different value', async () => {
    const { id } = await store({ integrationId: 'utf8q' });
    const message = 'the request URL is not valid (its query string: malformed percent-encoding, or bytes that are not UTF-8)';
    const answers: Record<string, unknown> = {};
    for (const [path, apiKey] of [
      ['/v1/keys?tag=%FF', keyAdmin.key],
      ['/v1/keys?tag=env=%C3%28', keyAdmin.key],
      ['/v1/credentials?integrationId=utf8q%FF', key.key],
      ['/v1/credentials?%FF=1', key.key],
      ['/v1/audit?resource=%ED%A0%80', auditor.key], // an encoded lone surrogate
      ['/v1/credentials/expiring?days=1%', key.key],
      [`/v1/credentials/${id}?x=%E2%82`, key.key],
      ['/v1/credentials?integrationId=%FF', 'cvk_nobody_invalid'], // refused before authentication
      ['/nope?q=%FF', key.key],
    ] as const) {
      const before = await stateSnapshot(api.host.app);
      const r = await send('GET', path, { apiKey });
      answers[path] = { status: r.status, message: r.body.message, requestId: typeof r.body.requestId };
      expect(await stateSnapshot(api.host.app)).toEqual(before);
    }
    expect(answers).toEqual(Object.fromEntries(Object.keys(answers).map((path) => [path, { status: 400, message, requestId: 'string' }])));
    // Well-formed UTF-8, percent-encoded, is read as such.
    const decoded = await send('GET', '/v1/credentials?integrationId=%75tf8q');
    expect((decoded.body.items as Array<{ id: string }>).map((c) => c.id)).toEqual([id]);
    expect((await send('GET', '/v1/keys?tag=env%3D%C3%A9t%C3%A9', { apiKey: keyAdmin.key })).status).toBe(200);
  });

  it('18b. a single-valued query parameter given twice is 400 saying so, once; a list parameter may repeat', async () => {
    const repeated = { 'audit?resource=a&resource=b': 'resource', 'audit?limit=1&limit=2': 'limit', 'credentials?status=active&status=disabled': 'status', 'keys?limit=1&limit=2': 'limit' };
    const callerOf = (path: string) => (path.startsWith('audit') ? auditor.key : path.startsWith('keys') ? keyAdmin.key : key.key);
    const answers = await Promise.all(
      Object.keys(repeated).map(async (path) => {
        const r = await send('GET', `/v1/${path}`, { apiKey: callerOf(path) });
        return [path, [r.status, r.body.message]];
      }),
    );
    expect(Object.fromEntries(answers)).toEqual(Object.fromEntries(Object.entries(repeated).map(([path, name]) => [path, [400, [`${name} may be given once`]]])));
    expect((await send('GET', '/v1/audit?action=read&action=rotate', { apiKey: auditor.key })).status).toBe(200);
    expect((await send('GET', '/v1/keys?tag=env=a&tag=team=b', { apiKey: keyAdmin.key })).status).toBe(200);
  });
});
