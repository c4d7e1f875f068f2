import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { startTestHost } from '../../test/support/host';
import { stateSnapshot } from '../../test/support/state-snapshot';
import { apiClient, isErrorShape, QUIET_HOST_ENV, tenantKey } from './http';
import { fetchOperations, fillPath, type Operation } from './openapi';
import type { Profile } from './profile';
import { bounded, Examples, info, type PartResult } from './report';

/**
 * Bad input: generated requests (fast-check) over every route of the running host's OpenAPI document —
 * malformed ids, query values, bodies, content types and credentials, plus the shapes a client gets
 * wrong in practice (huge bodies, bad cursors, oversized batches, stale expectedVersion, malformed
 * certificates). The host must never answer 5xx, answer every 4xx in the documented shape without
 * repeating input, and change nothing (state tables and vault contents compared around each refusal).
 */

/** Every generated string carries this, so an error that repeats any of it is caught. */
const MARK = `zqM${randomBytes(3).toString('hex')}`;

export interface FuzzRequest {
  method: string;
  path: string;
  body?: Buffer;
  contentType?: string;
  auth: 'valid' | 'none' | 'invalid';
  secured: boolean;
  /** Which generator made it (for the per-kind counts). */
  kind: string;
}

/** Ids of the seeded tenant: existing credentials (each rotated once, so expectedVersion 1 is stale). */
export interface Existing {
  ids: string[];
}

// ───────────────────────────── generators ─────────────────────────────

/** encodeURIComponent throws on a lone surrogate: send U+FFFD there (raw bad escapes come from `badEscape`). */
const encode = (s: string) => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/gu, '\uFFFD'));
/** Percent escapes that are not UTF-8 or not escapes at all. */
const badEscape = fc.constantFrom('%FF', '%E0%A4%A', '%', '%zz', '%C0%AF', '%00').map((e) => `${e}${MARK}`);

/** Any text, marked: a lone surrogate, NUL and control characters and astral characters included. */
const anyText = fc
  .tuple(
    fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.string({ unit: 'binary', maxLength: 12 }),
      fc.string({ unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), maxLength: 3 }),
      fc.constantFrom('\u0000', '%00', '../', '0x10', '1e3', '-1', ' ', '\n', '__proto__', 'constructor'),
    ),
    fc.boolean(),
  )
  .map(([s, before]) => (before ? `${MARK}${s}` : `${s}${MARK}`));

/** Values a documented field may be sent with: wrong types, edge numbers, odd dates and strings. */
const fieldValue = fc.oneof(
  anyText,
  fc.constantFrom(true, false, null, 0, -1, 1.5, 1e308, -0, 2 ** 53, -(2 ** 63), '', '2030-01-01T00:00:00Z', '2030-02-30T00:00:00Z', 'api_key', 'revoked', 'vault'),
  fc.array(anyText, { maxLength: 3 }),
  fc.dictionary(anyText, anyText, { maxKeys: 3 }),
  fc.integer(),
);

const pathSegment = (name: string, existing: Existing) => {
  const malformed = fc.oneof(anyText.map(encode), badEscape);
  if (name === 'id') return fc.oneof(fc.constantFrom(...existing.ids), fc.constant(randomUUID()), malformed, fc.constantFrom('not-a-uuid', '00000000-0000-0000-0000-000000000000', randomUUID().toUpperCase()));
  if (name === 'version') return fc.oneof(fc.constantFrom('1', '2', '0', '-1', '0x1', '1e0', '99999999999999999999', '1.0', '9007199254740993'), malformed);
  return fc.oneof(fc.constantFrom('fuzz', 'github', 'c-api_key', 'a'.repeat(129), 'a'.repeat(5000)), malformed);
};

/** A cursor a client could send: random base64, a tampered real-looking one, JSON of another tenant, too long. */
const badCursor = fc.oneof(
  fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b).toString('base64url')),
  fc.constantFrom(
    Buffer.from(JSON.stringify({ tenantId: 'other', id: randomUUID() })).toString('base64url'),
    Buffer.from('{"createdAt":"x","id":1}').toString('base64'),
    'a'.repeat(600),
    '%00',
    '..',
  ),
  anyText.map(encode),
);

const queryString = (names: string[]) =>
  fc
    .array(
      fc.tuple(
        fc.oneof(fc.constantFrom(...(names.length ? names : ['limit'])), anyText.map(encode)),
        fc.oneof(anyText.map(encode), badEscape, badCursor, fc.constantFrom('', '0x10', '1e1', '-1', '-9999999999', '99999999999999999999', 'true', '1', '2030-01-01T00%3A00%3A00Z%00')),
      ),
      { maxLength: 3 },
    )
    .map((pairs) => (pairs.length ? `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}` : ''));

type Payload = { body: Buffer | undefined; contentType: string | undefined; kind: string };
const json = (v: unknown, kind: string): Payload => ({ body: Buffer.from(JSON.stringify(v) ?? 'null'), contentType: 'application/json', kind });

/** PEM that is not a usable certificate: truncated, garbage inside, a key where a certificate belongs, two headers. */
const malformedPem = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 200 }).map((b) => `-----BEGIN CERTIFICATE-----\n${Buffer.from(b).toString('base64')}\n-----END CERTIFICATE-----\n`),
  fc.constantFrom(
    '-----BEGIN CERTIFICATE-----\nMIIB\n',
    '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n',
    '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n',
    `-----BEGIN CERTIFICATE-----\n${'A'.repeat(2000)}\n-----END CERTIFICATE-----\n`,
    '-----BEGIN RSA PRIVATE KEY-----\n!!!!\n-----END RSA PRIVATE KEY-----\n',
  ),
);

const bodyArbitrary = (fields: string[]) =>
  fc.oneof(
    // documented fields with wrong values, and unknown fields
    fc
      .tuple(fc.subarray(fields.length ? fields : ['value']), fc.array(fieldValue, { minLength: 8, maxLength: 8 }), fc.dictionary(anyText, fieldValue, { maxKeys: 2 }))
      .map(([keys, values, extra]) => json({ ...Object.fromEntries(keys.map((k, i) => [k, values[i]])), ...extra }, 'fields')),
    // any JSON at all
    fc.jsonValue({ maxDepth: 3 }).map((v) => json(v, 'any-json')),
    // deep nesting
    fc.integer({ min: 30, max: 20_000 }).map((d) => ({ body: Buffer.from(`${'['.repeat(d)}"${MARK}"${']'.repeat(d)}`), contentType: 'application/json', kind: 'deep' })),
    // huge: over the body limit, or a value over Key Vault's 25 KB
    fc.constantFrom(300 * 1024, 26 * 1024, 1024 * 1024).map((n) => json({ integrationId: 'fuzz', connectionId: 'huge', type: 'api_key', value: `${MARK}${'x'.repeat(n)}` }, 'huge')),
    // not JSON, not UTF-8, other media types
    fc
      .tuple(fc.uint8Array({ maxLength: 40 }), fc.constantFrom('application/json', 'application/x-www-form-urlencoded', 'text/plain', 'application/xml', 'application/json; charset=latin1', 'multipart/form-data', 'application/octet-stream'))
      .map(([bytes, contentType]) => ({ body: Buffer.concat([Buffer.from(`{"value":"${MARK}`), Buffer.from(bytes)]), contentType, kind: 'not-json' })),
    fc.constant<Payload>({ body: undefined, contentType: undefined, kind: 'no-body' }),
  );

/** Requests with well-formed JSON that a real client gets wrong: the documented routes, valid auth. */
function targeted(existing: Existing): fc.Arbitrary<FuzzRequest> {
  const id = fc.constantFrom(...existing.ids);
  const req = (method: string, path: string, p: Payload): FuzzRequest => ({ method, path, body: p.body, contentType: p.contentType, auth: 'valid', secured: true, kind: p.kind });
  return fc.oneof(
    // stale expectedVersion: every seeded credential is at row version ≥ 2
    fc.tuple(id, fc.constantFrom('rotate', 'patch', 'rollback', 'delete'), fc.constantFrom(1, 0, -1)).map(([i, op, v]) =>
      op === 'rotate'
        ? req('POST', `/v1/credentials/${i}/rotate`, json({ value: `${MARK}-stale`, expectedVersion: v }, 'stale-version'))
        : op === 'patch'
          ? req('PATCH', `/v1/credentials/${i}`, json({ tags: { k: MARK }, expectedVersion: v }, 'stale-version'))
          : op === 'rollback'
            ? req('POST', `/v1/credentials/${i}/rollback`, json({ version: 1, expectedVersion: v }, 'stale-version'))
            : req('DELETE', `/v1/credentials/${i}?expectedVersion=${v}`, { body: undefined, contentType: undefined, kind: 'stale-version' }),
    ),
    // oversized or mixed batches: one malformed id fails the whole batch
    fc
      .tuple(fc.integer({ min: 501, max: 5000 }), fc.boolean())
      .map(([n, withExisting]) => req('POST', '/v1/credentials/delete-batch', json({ ids: [...(withExisting ? existing.ids : []), ...Array.from({ length: n }, () => randomUUID())] }, 'oversized-batch'))),
    fc.tuple(fc.subarray(existing.ids, { minLength: 1 }), anyText).map(([ids, bad]) => req('POST', '/v1/credentials/delete-batch', json({ ids: [...ids, bad] }, 'bad-batch'))),
    // malformed certificates and keys
    fc
      .tuple(malformedPem, fc.constantFrom('client_certificate', 'client_private_key'))
      .map(([pem, type]) => req('POST', '/v1/credentials', json({ integrationId: 'fuzz', connectionId: `pem-${type}`, type, value: `${pem}${MARK}` }, 'malformed-pem'))),
    fc.tuple(id, malformedPem).map(([i, pem]) => req('POST', `/v1/credentials/${i}/rotate`, json({ value: pem }, 'malformed-pem'))),
    // bad cursors and numbers on the list routes
    fc.tuple(badCursor, fc.constantFrom('/v1/credentials', '/v1/audit')).map(([c, p]) => req('GET', `${p}?cursor=${c}`, { body: undefined, contentType: undefined, kind: 'bad-cursor' })),
    fc.constantFrom('-1', '0', '501', '1e2', '99999999999999999999', '1.5').map((n) => req('GET', `/v1/credentials?limit=${n}`, { body: undefined, contentType: undefined, kind: 'bad-number' })),
  );
}

export function requestArbitrary(operations: Operation[], existing: Existing): fc.Arbitrary<FuzzRequest> {
  const generic = fc.constantFrom(...operations).chain((op) =>
    fc
      .record({
        segments: fc.tuple(...op.pathParams.map((n) => pathSegment(n, existing))),
        query: queryString(op.query),
        payload: op.method === 'GET' ? fc.constant<Payload>({ body: undefined, contentType: undefined, kind: 'query' }) : bodyArbitrary(op.bodyFields),
        auth: fc.constantFrom<FuzzRequest['auth']>('valid', 'valid', 'valid', 'valid', 'none', 'invalid'),
      })
      .map(({ segments, query, payload, auth }) => ({
        method: op.method,
        path: `${fillPath(op, segments as string[])}${query}`,
        body: payload.body,
        contentType: payload.contentType,
        auth,
        secured: op.secured,
        kind: payload.kind,
      })),
  );
  return fc.oneof({ arbitrary: generic, weight: 4 }, { arbitrary: targeted(existing), weight: 1 });
}

// ───────────────────────────── the part ─────────────────────────────

export interface BadInputOptions {
  /** fast-check seed (printed in the result, to replay a failure). */
  seed?: number;
}

export async function badInput(p: Profile, o: BadInputOptions = {}): Promise<PartResult> {
  const started = performance.now();
  const seed = o.seed ?? (Date.now() ^ 0x5eed) >>> 0;
  const examples = new Examples();
  const totals = { requests: 0, fiveXx: 0, badShape: 0, echoes: 0, writesOnRefusal: 0, notUnauthorized: 0, routes: 0, routesHit: 0, logEchoes: 0, refused: 0 };
  const kinds: Record<string, number> = {};
  const perDb = Math.ceil(p.badInput.requests / p.badInput.databases.length);
  for (const kind of p.badInput.databases) {
    const key = tenantKey('fuzz-admin', 'acme');
    const host = await startTestHost(kind, { AUTH_API_KEYS: JSON.stringify([key.entry]), ...QUIET_HOST_ENV });
    try {
      const call = apiClient(host.baseUrl, key.key);
      const operations = await fetchOperations(host.baseUrl);
      totals.routes = Math.max(totals.routes, operations.length);
      const existing: Existing = { ids: [] };
      for (const type of ['api_key', 'custom_secret', 'webhook_secret']) {
        const value = () => (type === 'webhook_secret' ? `whsec_${randomBytes(32).toString('base64')}` : `value-${randomBytes(8).toString('hex')}`);
        const res = await call('POST', '/v1/credentials', { integrationId: 'fuzz', connectionId: `c-${type}`, type, value: value() });
        if (res.status !== 201) throw new Error(`seeding: ${res.status} ${res.text}`);
        const rotated = await call('POST', `/v1/credentials/${res.body.id}/rotate`, { value: value() });
        if (rotated.status !== 200) throw new Error(`seeding: ${rotated.status} ${rotated.text}`);
        existing.ids.push(res.body.id as string);
      }
      const hit = new Set<string>();
      const samples = fc.sample(requestArbitrary(operations, existing), { numRuns: perDb, seed: seed + (kind === 'postgres' ? 1 : 0) });
      for (const req of samples) {
        totals.requests++;
        kinds[req.kind] = (kinds[req.kind] ?? 0) + 1;
        const op = operations.find((o) => o.method === req.method && new RegExp(`^${o.path.replace(/\{\w+\}/g, '[^/]*')}(\\?|$)`).test(req.path));
        if (op) hit.add(`${op.method} ${op.path}`);
        const before = await stateSnapshot(host.app);
        const headers: Record<string, string> = {};
        if (req.auth === 'valid') headers['x-api-key'] = key.key;
        if (req.auth === 'invalid') headers['x-api-key'] = `cvk_${MARK}_x`;
        if (req.contentType !== undefined) headers['content-type'] = req.contentType;
        const res = await fetch(`${host.baseUrl}${req.path}`, { method: req.method, headers, body: req.body, signal: AbortSignal.timeout(30_000) });
        const text = await res.text();
        const where = `${kind} ${req.kind} ${req.method} ${req.path.slice(0, 120)} → ${res.status} ${text.slice(0, 160)}`;
        if (res.status >= 500) {
          totals.fiveXx++;
          examples.add(`5xx: ${where}`);
        }
        // Refused before authentication, doing no work: a URL the router cannot match or that does not decode
        // (bad percent-encoding in the path or query, an over-long segment) and a body over the limit (413 from its length, never read).
        const routingError = res.status === 414 || res.status === 413 || (res.status === 400 && text.includes('the request URL is not valid'));
        if (req.secured && req.auth !== 'valid' && res.status !== 401 && !routingError) {
          totals.notUnauthorized++;
          examples.add(`not 401 without valid credentials: ${where}`);
        }
        if (res.status < 400) continue;
        totals.refused++;
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        if (!isErrorShape(res.status, body)) {
          totals.badShape++;
          examples.add(`error body not in the documented shape: ${where}`);
        }
        if (text.includes(MARK)) {
          totals.echoes++;
          examples.add(`the error repeats request input: ${where}`);
        }
        const after = await stateSnapshot(host.app);
        if (JSON.stringify(after) !== JSON.stringify(before)) {
          totals.writesOnRefusal++;
          examples.add(`a refused request changed stored state: ${where}`);
        }
      }
      totals.routesHit += hit.size;
      totals.logEchoes += host.logs.filter((l) => l.includes(MARK)).length;
    } finally {
      await host.close();
    }
  }
  return {
    part: 'Bad input',
    profile: p.name,
    method:
      'fast-check generates requests over every route of the running host\'s OpenAPI document (so routes added later are covered): malformed path ids (bad escapes, lone surrogates, NUL, over-long), query values and cursors, bodies with wrong types, missing and extra fields, any JSON, nesting up to 20,000 levels, bodies over the 256 KB limit and values over 25 KB, bytes that are not JSON or UTF-8, other content types, no or a forged API key; plus well-formed requests a client gets wrong: stale `expectedVersion` on rotate/patch/rollback/delete, delete batches over 500 ids or with one bad id, malformed PEM certificates and keys, bad `limit`s. Each refused request is bracketed by a snapshot of the state tables (every row) and of the vault (every secret version): they must be equal. Every generated string carries a marker that no response or log line may repeat.',
    ran: `${totals.requests} requests (seed ${seed}) over ${totals.routes} routes on ${p.badInput.databases.join(' and ')} (a host per database, SQLite file / PostgreSQL schema, its own local vault); by generator: ${Object.entries(kinds).map(([k, n]) => `${k} ${n}`).join(', ')}.`,
    figures: [
      info('requests', totals.requests),
      info('routes in the OpenAPI document', totals.routes),
      info('requests refused (4xx)', totals.refused),
      bounded('responses 5xx', totals.fiveXx, '=', 0),
      bounded('4xx not in the documented shape', totals.badShape, '=', 0),
      bounded('secured route answered without valid credentials', totals.notUnauthorized, '=', 0),
      bounded('refused requests that changed state', totals.writesOnRefusal, '=', 0),
      bounded('responses or log lines repeating input', totals.echoes + totals.logEchoes, '=', 0),
    ],
    examples: [...examples.list, ...(examples.list.length ? [`replay with seed ${seed}`] : [])],
    durationS: Math.round((performance.now() - started) / 1000),
  };
}
