import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { startTestHost } from '../../test/support/host';
import { stateSnapshot } from '../../test/support/state-snapshot';
import { apiClient, isErrorShape, QUIET_HOST_ENV, tenantKey } from './http';
import { fetchOperations, fillPath, undocumentedNull, type Operation, type PropertySchema } from './openapi';
import type { Profile } from './profile';
import { bounded, Examples, info, type PartResult } from './report';

/**
 * Bad input: generated requests (fast-check) over every route of the running host's OpenAPI document —
 * malformed ids, query values, bodies, headers, content types and credentials, plus the shapes a client gets
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
  /** Headers besides the API key and content type. */
  headers?: Record<string, string>;
  secured: boolean;
  /** Which generator made it (for the per-kind counts). */
  kind: string;
}

/** Ids of the seeded tenant: existing credentials (each rotated once, so expectedVersion 1 is stale). */
export interface Existing {
  ids: string[];
}

/**
 * The fuzz host's OAuth provider and its seeded connection: without a provider every OAuth route answers 404 before
 * reading its body. Its client secret is no stored credential and its token endpoint a closed port, so a refresh never
 * leaves the machine: one that a request reaches (a rejected-token report, an expired token read) fails on the
 * provider's configuration, OAUTH_REFRESH_CONFIGURATION (4007, 500 — a fault of the deployment, not of the request,
 * since 219717a), which `fixtureConfiguration` tells apart from a 5xx finding.
 */
const OAUTH_INTEGRATION = 'fuzz';
const OAUTH_CONNECTION = 'c-oauth';
const oauthProviders = (tenantId: string) =>
  JSON.stringify([{ integrationId: OAUTH_INTEGRATION, tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'fuzz', clientSecret: { credentialId: randomUUID(), tenantId }, allowInsecureRequests: true }]);

/** A 500 that is the fixture's own misconfigured provider (above) answering a refresh, not a fault the request found. */
export function fixtureConfiguration(path: string, status: number, body: unknown): boolean {
  const codeName = typeof body === 'object' && body !== null ? (body as { codeName?: unknown }).codeName : undefined;
  return status === 500 && path.startsWith(`/v1/oauth/connections/${OAUTH_INTEGRATION}/`) && codeName === 'OAUTH_REFRESH_CONFIGURATION';
}

// ───────────────────────────── generators ─────────────────────────────

/** encodeURIComponent throws on a lone surrogate: send U+FFFD there (raw bad escapes come from `badEscape`). */
const encode = (s: string) => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/gu, '\uFFFD'));
/** Percent escapes that are not UTF-8 or not escapes at all. */
const badEscape = fc.constantFrom('%FF', '%E0%A4%A', '%', '%zz', '%C0%AF', '%00').map((e) => `${e}${MARK}`);

/** Text that looks harmless and is not: BOM, bidi override, zero-width joiners, line separators, combining and decomposed forms, noncharacters, astral, NEL, case-mapping traps. */
const oddUnicode = fc.constantFrom('\uFEFF', '\u202E', '\u200B\u200D', '\u2028', '\u2029', 'e\u0301', '\uFFFF', '\uFFFE', '\u{10FFFF}', '\u{1F600}', '\u0085', '\u00A0', '\u0130', 'ß', '\u0000\u{1F600}');
/** Longer than a column: one past each varchar limit of the schemas (128, 256, 512, 2048) and beyond, ASCII, 2-byte, astral or NUL. */
const longText = fc.tuple(fc.constantFrom(129, 257, 513, 2049, 9000), fc.constantFrom('a', 'é', '\u{1F600}', '\u0000')).map(([n, c]) => c.repeat(n));

/** Any text, marked: a lone surrogate, NUL and control characters, astral and odd characters, over-long strings included. */
const anyText = fc
  .tuple(
    fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.string({ unit: 'binary', maxLength: 12 }),
      fc.string({ unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), maxLength: 3 }),
      fc.constantFrom('\u0000', '%00', '../', '0x10', '1e3', '-1', ' ', '\n', '__proto__', 'constructor'),
      fc.array(oddUnicode, { minLength: 1, maxLength: 3 }).map((a) => a.join('')),
      longText,
    ),
    fc.boolean(),
  )
  .map(([s, before]) => (before ? `${MARK}${s}` : `${s}${MARK}`));

/** Integers past what a column holds: int4 and uint32 bounds, the largest safe integer (the DTOs' maximum). */
const wideInts = [2 ** 31, -(2 ** 31) - 1, 2 ** 32, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER];

/** Values a documented field may be sent with: wrong types, edge numbers, odd dates and strings. */
const fieldValue = fc.oneof(
  anyText,
  fc.constantFrom(true, false, null, 0, -1, 1.5, 1e308, -0, 2 ** 53, -(2 ** 63), ...wideInts, '', '2030-01-01T00:00:00Z', '2030-02-30T00:00:00Z', 'api_key', 'revoked', 'vault'),
  fc.array(anyText, { maxLength: 3 }),
  fc.dictionary(anyText, anyText, { maxKeys: 3 }),
  fc.integer(),
);

const pathSegment = (name: string, existing: Existing) => {
  const malformed = fc.oneof(anyText.map(encode), badEscape);
  if (name === 'id') return fc.oneof(fc.constantFrom(...existing.ids), fc.constant(randomUUID()), malformed, fc.constantFrom('not-a-uuid', '00000000-0000-0000-0000-000000000000', randomUUID().toUpperCase()));
  if (name === 'version') return fc.oneof(fc.constantFrom('1', '2', '0', '-1', '0x1', '1e0', '99999999999999999999', '1.0', '9007199254740993', ...wideInts.map(String)), malformed);
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
        fc.oneof(anyText.map(encode), badEscape, badCursor, fc.constantFrom('', '0x10', '1e1', '-1', '-9999999999', '99999999999999999999', 'true', '1', '2030-01-01T00%3A00%3A00Z%00', ...wideInts.map(String))),
      ),
      { maxLength: 3 },
    )
    .map((pairs) => (pairs.length ? `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}` : ''));

/**
 * Headers the host reads (request id, trace context, user agent — kept in audit rows —, the webhook signature trio,
 * content encoding) with values fetch can send: Latin-1 (no NUL, CR, LF; fetch refuses those), over-long (past
 * 16 KB too), numbers out of range. A marked value also carries a `/`, so no x-request-id is well-formed (the
 * host echoes a well-formed one by design).
 */
const HEADER_NAMES = ['user-agent', 'x-request-id', 'traceparent', 'tracestate', 'baggage', 'webhook-id', 'webhook-timestamp', 'webhook-signature', 'content-encoding', 'accept', 'accept-encoding', 'x-forwarded-for'];
const latin1 = fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c)), maxLength: 16 });
const headerValue = fc.oneof(
  fc.oneof(latin1, fc.constantFrom('v1,', `v1,${'A'.repeat(4000)}`, 'é'.repeat(600), 'x'.repeat(9000), 'x'.repeat(17_000))).map((v) => `${MARK}/${v}`),
  fc.constantFrom('99999999999999999999', '-1', '0', '2147483648', '1e3', 'gzip', 'br', 'deflate', 'identity', '00-00000000000000000000000000000000-0000000000000000-00', '*/*;q=2'),
);
const headerSet = fc.array(fc.tuple(fc.constantFrom(...HEADER_NAMES), headerValue), { maxLength: 2 }).map((pairs) => Object.fromEntries(pairs));

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

/**
 * Explicit nulls in documented fields (`@IsOptional()` lets null through to the service as if it were a value) and,
 * in a list or map field, as one of its items.
 */
const nulls = (fields: string[], schema: Record<string, PropertySchema> = {}, maxLength?: number) =>
  fc.subarray(fields, { minLength: 1, maxLength }).chain((keys) =>
    fc.tuple(...keys.map(() => fc.boolean())).map((inside) =>
      Object.fromEntries(
        keys.map((k, i) => {
          const s = schema[k];
          if (!inside[i] || !s) return [k, null];
          return [k, s.type === 'array' ? [`${MARK}`, null] : typeof s.additionalProperties === 'object' ? { a: `${MARK}`, b: null } : null];
        }),
      ),
    ),
  );

const bodyArbitrary = (fields: string[], schema: Record<string, PropertySchema>) =>
  fc.oneof(
    nulls(fields.length ? fields : ['value'], schema).map((v) => json(v, 'nulls')),
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
    fc.tuple(id, fc.constantFrom('rotate', 'patch', 'rollback', 'delete'), fc.constantFrom(1, 0, -1, ...wideInts)).map(([i, op, v]) =>
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
    // the seeded OAuth connection: a token response or a rejected-token report with wrong values
    fc
      .tuple(
        fc.constantFrom('tokens', 'token-rejected'),
        fc.oneof(
          fc.record({ access_token: fieldValue, refresh_token: fieldValue, expires_in: fieldValue, token_type: fieldValue, scope: fieldValue }, { requiredKeys: [] }),
          fc.record({ accessToken: fieldValue }),
          fc.dictionary(anyText, fieldValue, { maxKeys: 3 }),
          nulls(['access_token', 'refresh_token', 'expires_in', 'token_type', 'scope', 'accessToken']),
        ),
      )
      .map(([route, body]) => req('POST', `/v1/oauth/connections/${OAUTH_INTEGRATION}/${OAUTH_CONNECTION}/${route}`, json(body, 'oauth'))),
  );
}

/**
 * Valid bodies of routes with optional fields, which the null generator sets fields of to null (routes without one get
 * only nulls, which their required fields refuse anyway). No marker: a valid request may be logged. No revoke: it
 * would end the seeded credentials' use for the rest of the run.
 */
const VALID_BODIES: Record<string, Record<string, unknown>> = {
  'POST /v1/credentials': { integrationId: 'fuzz', connectionId: 'c-nulls', type: 'api_key', value: 'value-nulls-0123' },
  'PATCH /v1/credentials/{id}': { tags: { team: 'core' } },
  'POST /v1/credentials/{id}/rotate': { value: 'value-nulls-4567' },
  'POST /v1/rotation/credentials/{id}/rotate': { value: 'value-nulls-89ab', reason: 'fuzz' },
  'POST /v1/rotation/credentials/{id}/rollback': { version: 1, reason: 'fuzz' },
  'PUT /v1/rotation/policies': { level: 'tenant', rotateAfterDays: 30 },
  'PUT /v1/rotation/notifications/settings': { emailRecipients: ['ops@example.com'] },
  'POST /v1/oauth/connections/{integrationId}/{connectionId}/tokens': { access_token: 'at-nulls', expires_in: 3600, token_type: 'Bearer' },
};

export function requestArbitrary(operations: Operation[], existing: Existing): fc.Arbitrary<FuzzRequest> {
  const generic = fc.constantFrom(...operations).chain((op) =>
    fc
      .record({
        segments: fc.tuple(...op.pathParams.map((n) => pathSegment(n, existing))),
        query: queryString(op.query),
        payload: op.method === 'GET' ? fc.constant<Payload>({ body: undefined, contentType: undefined, kind: 'query' }) : bodyArbitrary(op.bodyFields, op.bodySchema),
        auth: fc.constantFrom<FuzzRequest['auth']>('valid', 'valid', 'valid', 'valid', 'none', 'invalid'),
        headers: headerSet,
      })
      .map(({ segments, query, payload, auth, headers }) => ({
        method: op.method,
        path: `${fillPath(op, segments as string[])}${query}`,
        body: payload.body,
        contentType: payload.contentType,
        auth,
        headers,
        secured: op.secured,
        kind: payload.kind,
      })),
  );
  // Nulls in an otherwise valid request (a well-formed path, an existing credential, a valid body where one is listed
  // below): the null is then the only thing wrong, so a route that takes it answers 2xx — the oracle's finding.
  const withBody = operations.filter((op) => op.method !== 'GET' && op.bodyFields.length > 0);
  const wellFormed = (name: string) => (name === 'id' ? fc.constantFrom(...existing.ids) : fc.constant(name === 'version' ? '1' : name === 'connectionId' ? OAUTH_CONNECTION : OAUTH_INTEGRATION));
  const valid = withBody.filter((op) => VALID_BODIES[`${op.method} ${op.path}`]);
  const route = valid.length ? fc.oneof({ arbitrary: fc.constantFrom(...valid), weight: 3 }, { arbitrary: fc.constantFrom(...withBody), weight: 1 }) : fc.constantFrom(...withBody);
  // One null at a time: with a valid body, it is all that is wrong.
  const nullsOnRoutes = route.chain((op) =>
    fc.tuple(fc.tuple(...op.pathParams.map(wellFormed)), nulls(op.bodyFields, op.bodySchema, 1)).map(
      ([segments, body]): FuzzRequest => ({
        method: op.method,
        path: fillPath(op, segments as string[]),
        ...json({ ...VALID_BODIES[`${op.method} ${op.path}`], ...body }, 'nulls-on-route'),
        auth: 'valid',
        secured: op.secured,
      }),
    ),
  );
  return fc.oneof({ arbitrary: generic, weight: 4 }, { arbitrary: targeted(existing), weight: 1 }, { arbitrary: nullsOnRoutes, weight: 1 });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
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
  const totals = { requests: 0, fiveXx: 0, fixtureConfiguration: 0, badShape: 0, echoes: 0, writesOnRefusal: 0, notUnauthorized: 0, routes: 0, routesHit: 0, logEchoes: 0, refused: 0, nullsTaken: 0 };
  const kinds: Record<string, number> = {};
  const perDb = Math.ceil(p.badInput.requests / p.badInput.databases.length);
  for (const kind of p.badInput.databases) {
    const key = tenantKey('fuzz-admin', 'acme');
    const host = await startTestHost(kind, { AUTH_API_KEYS: JSON.stringify([key.entry]), OAUTH_PROVIDERS: oauthProviders('acme'), ...QUIET_HOST_ENV });
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
      const tokens = { access_token: `at-${randomBytes(16).toString('hex')}`, refresh_token: `rt-${randomBytes(16).toString('hex')}`, expires_in: 3600, token_type: 'Bearer' };
      const oauth = await call('POST', `/v1/oauth/connections/${OAUTH_INTEGRATION}/${OAUTH_CONNECTION}/tokens`, tokens);
      if (oauth.status !== 201) throw new Error(`seeding: ${oauth.status} ${oauth.text}`);
      const hit = new Set<string>();
      const samples = fc.sample(requestArbitrary(operations, existing), { numRuns: perDb, seed: seed + (kind === 'postgres' ? 1 : 0) });
      for (const req of samples) {
        totals.requests++;
        kinds[req.kind] = (kinds[req.kind] ?? 0) + 1;
        // A literal path first: /v1/credentials/delete-batch is not /v1/credentials/{id}.
        const bare = req.path.split('?')[0];
        const op =
          operations.find((o) => o.method === req.method && o.path === bare) ??
          operations.find((o) => o.method === req.method && new RegExp(`^${o.path.replace(/\{\w+\}/g, '[^/]*')}(\\?|$)`).test(req.path));
        if (op) hit.add(`${op.method} ${op.path}`);
        const before = await stateSnapshot(host.app);
        const headers: Record<string, string> = { ...req.headers };
        if (req.auth === 'valid') headers['x-api-key'] = key.key;
        if (req.auth === 'invalid') headers['x-api-key'] = `cvk_${MARK}_x`;
        if (req.contentType !== undefined) headers['content-type'] = req.contentType;
        const res = await fetch(`${host.baseUrl}${req.path}`, { method: req.method, headers, body: req.body, signal: AbortSignal.timeout(30_000) });
        const text = await res.text();
        const shownHeaders = Object.entries(req.headers ?? {}).map(([k, v]) => `${k}: ${v.slice(0, 40)}`).join(', ');
        const where = `${kind} ${req.kind} ${req.method} ${req.path.slice(0, 120)}${shownHeaders ? ` [${shownHeaders}]` : ''} → ${res.status} ${text.slice(0, 160)}`;
        if (fixtureConfiguration(req.path, res.status, parseJson(text))) totals.fixtureConfiguration++;
        else if (res.status >= 500) {
          totals.fiveXx++;
          examples.add(`5xx: ${where}`);
        }
        // Refused before authentication, doing no work: a URL the router cannot match or that does not decode
        // (bad percent-encoding in the path or query, an over-long segment), a body over the limit (413 from its length, never read)
        // and a request line and headers over 16 KB (431 from Node's parser: no header was read).
        const routingError = res.status === 414 || res.status === 413 || res.status === 431 || (res.status === 400 && text.includes('the request URL is not valid'));
        if (req.secured && req.auth !== 'valid' && res.status !== 401 && !routingError) {
          totals.notUnauthorized++;
          examples.add(`not 401 without valid credentials: ${where}`);
        }
        if (res.status < 400) {
          // Accepted: a null where the document does not say `nullable` must have been refused (400), not taken.
          const field = op && req.contentType === 'application/json' && req.body ? undocumentedNull(op, parseJson(req.body.toString())) : undefined;
          if (field !== undefined) {
            totals.nullsTaken++;
            examples.add(`a null in ${field}, not documented nullable, was taken: ${where}`);
          }
          continue;
        }
        totals.refused++;
        if (!isErrorShape(res.status, parseJson(text))) {
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
      'fast-check generates requests over every route of the running host\'s OpenAPI document (so routes added later are covered): malformed path ids (bad escapes, lone surrogates, NUL, over-long), query values and cursors, bodies with wrong types, explicit nulls (in a field, a list or a map), missing and extra fields, strings past each column\'s length, BOM / bidi / zero-width / noncharacters, integers past int4 and up to 2^53 − 1, any JSON, nesting up to 20,000 levels, bodies over the 256 KB limit and values over 25 KB, bytes that are not JSON or UTF-8, other content types, no or a forged API key, odd, over-long or out-of-range values of the headers the host reads (request id, trace context, user agent, webhook signature, content encoding); plus well-formed requests a client gets wrong: stale `expectedVersion` on rotate/patch/rollback/delete, delete batches over 500 ids or with one bad id, malformed PEM certificates and keys, bad `limit`s, token responses and rejected-token reports with wrong values on a seeded OAuth connection (the host registers a provider, so the OAuth routes read their bodies). A request taken (2xx) with a null where the OpenAPI document does not say `nullable` is a finding. Each refused request is bracketed by a snapshot of the state tables (every row) and of the vault (every secret version): they must be equal. Every generated string carries a marker that no response or log line may repeat.',
    ran: `${totals.requests} requests (seed ${seed}) over ${totals.routes} routes on ${p.badInput.databases.join(' and ')} (a host per database, SQLite file / PostgreSQL schema, its own local vault); by generator: ${Object.entries(kinds).map(([k, n]) => `${k} ${n}`).join(', ')}.`,
    figures: [
      info('requests', totals.requests),
      info('routes in the OpenAPI document', totals.routes),
      info('requests refused (4xx)', totals.refused),
      info("refreshes failing on the fixture provider's configuration (4007, 500; not findings)", totals.fixtureConfiguration),
      bounded('responses 5xx', totals.fiveXx, '=', 0),
      bounded('4xx not in the documented shape', totals.badShape, '=', 0),
      bounded('secured route answered without valid credentials', totals.notUnauthorized, '=', 0),
      bounded('refused requests that changed state', totals.writesOnRefusal, '=', 0),
      bounded('explicit nulls taken where the document does not say nullable', totals.nullsTaken, '=', 0),
      bounded('responses or log lines repeating input', totals.echoes + totals.logEchoes, '=', 0),
    ],
    examples: [...examples.list, ...(examples.list.length ? [`replay with seed ${seed}`] : [])],
    durationS: Math.round((performance.now() - started) / 1000),
  };
}
