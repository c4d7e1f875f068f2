import { randomBytes, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { DATABASE_KINDS } from '@app/testing';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { startTestHost, TestHost } from './support/host';
import { stateSnapshot } from './support/state-snapshot';

/**
 * Property: whatever a client sends to any route of the OpenAPI document — malformed ids, query
 * values, bodies, content types, credentials — the host never answers 5xx, errors have the documented
 * shape, no error repeats a request value, and a refused request changes no stored state.
 *
 * `npm test` runs FUZZ_RUNS (default 60) requests per database; the reliability run sets more, e.g.
 * `FUZZ_RUNS=3000 npx jest test/http-fuzz.e2e-spec.ts`. A failure prints fast-check's seed and path
 * to replay it (FUZZ_SEED).
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;

/** Every generated string carries this, so an error that repeats any of it is caught. */
const MARK = `zqM${randomBytes(3).toString('hex')}`;

interface Operation {
  method: string;
  /** OpenAPI path with `{param}` placeholders. */
  path: string;
  query: string[];
  /** Documented body fields, if the operation takes a body. */
  bodyFields: string[];
  /** Declares a security requirement (everything but health, metrics and docs). */
  secured: boolean;
}

interface FuzzRequest {
  method: string;
  path: string;
  body?: Buffer;
  contentType?: string;
  auth: 'valid' | 'none' | 'invalid';
  secured: boolean;
}

describe.each(DATABASE_KINDS)('HTTP API under malformed input on %s (property-based)', (kind) => {
  let host: TestHost;
  let operations: Operation[];
  const existing: string[] = [];
  const key = generateApiKey('fuzz-admin', 'acme', ['admin']);

  beforeAll(async () => {
    host = await startTestHost(kind, { AUTH_API_KEYS: JSON.stringify([key.entry]), OAUTH_PROACTIVE_ENABLED: 'false', RATE_LIMIT_PER_MINUTE: '1000000' });
    const doc = (await (await fetch(`${host.baseUrl}/docs/json`)).json()) as OpenApiDoc;
    operations = listOperations(doc);
    for (const type of ['api_key', 'custom_secret', 'webhook_secret']) {
      const value = type === 'webhook_secret' ? `whsec_${randomBytes(32).toString('base64')}` : `value-${randomBytes(8).toString('hex')}`;
      const res = await fetch(`${host.baseUrl}/v1/credentials`, {
        method: 'POST',
        headers: { 'x-api-key': key.key, 'content-type': 'application/json' },
        body: JSON.stringify({ integrationId: 'fuzz', connectionId: `c-${type}`, type, value }),
      });
      existing.push(((await res.json()) as { id: string }).id);
    }
  });

  afterAll(async () => {
    await host?.close();
  });

  it('covers every documented route', () => {
    const paths = new Set(operations.map((o) => `${o.method} ${o.path}`));
    for (const route of ['POST /v1/credentials', 'GET /v1/credentials/{id}/value', 'POST /v1/oauth/connections/{integrationId}/{connectionId}/tokens', 'GET /v1/audit']) {
      expect(paths).toContain(route);
    }
  });

  it('never answers 5xx, never echoes input, and a refused request writes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(requestArbitrary(operations, existing), async (req) => {
        const before = await stateSnapshot(host.app);
        const headers: Record<string, string> = {};
        if (req.auth === 'valid') headers['x-api-key'] = key.key;
        if (req.auth === 'invalid') headers['x-api-key'] = `cvk_${MARK}_x`;
        if (req.contentType !== undefined) headers['content-type'] = req.contentType;
        const res = await fetch(`${host.baseUrl}${req.path}`, { method: req.method, headers, body: req.body });
        const text = await res.text();
        const where = `${req.method} ${req.path} → ${res.status} ${text.slice(0, 200)}`;
        if (res.status >= 500) throw new Error(`5xx: ${where}`);
        // Only a URL the router cannot match (bad percent-encoding, an over-long segment) is refused before authentication.
        const routingError = res.status === 414 || (res.status === 400 && text.includes('the request URL is not valid'));
        if (req.secured && req.auth !== 'valid' && res.status !== 401 && !routingError) throw new Error(`not 401 without valid credentials: ${where}`);
        if (res.status < 400) return;
        const body = JSON.parse(text) as Record<string, unknown>;
        const shapeOk =
          body.statusCode === res.status &&
          typeof body.error === 'string' &&
          (typeof body.message === 'string' || (Array.isArray(body.message) && body.message.every((m) => typeof m === 'string'))) &&
          typeof body.requestId === 'string';
        if (!shapeOk) throw new Error(`error body not in the documented shape: ${where}`);
        if (text.includes(MARK)) throw new Error(`the error repeats request input: ${where}`);
        const after = await stateSnapshot(host.app);
        expect(after).toEqual(before);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    expect(host.logs.join('\n')).not.toContain(MARK);
  }, 300_000);
});

interface OpenApiDoc {
  paths: Record<
    string,
    Record<string, { parameters?: { name: string; in: string }[]; security?: unknown[]; requestBody?: { content?: Record<string, { schema?: { $ref?: string } }> } }>
  >;
  components?: { schemas?: Record<string, { properties?: Record<string, unknown> }> };
}

function listOperations(doc: OpenApiDoc): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const ref = op.requestBody?.content?.['application/json']?.schema?.$ref;
      const schema = ref ? doc.components?.schemas?.[ref.split('/').pop()!] : undefined;
      ops.push({
        method: method.toUpperCase(),
        path,
        query: (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name),
        bodyFields: Object.keys(schema?.properties ?? {}),
        secured: (op.security ?? []).length > 0,
      });
    }
  }
  return ops;
}

// ───────────────────────────── generators ─────────────────────────────

/** encodeURIComponent throws on a lone surrogate: send U+FFFD there (raw bad escapes come from `badEscape`). */
const encode = (s: string) => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/gu, '\uFFFD'));
/** Percent escapes that are not UTF-8 or not escapes at all. */
const badEscape = fc.constantFrom('%FF', '%E0%A4%A', '%', '%zz', '%C0%AF', '%00').map((e) => `${e}${MARK}`);

/** Any text, marked: a lone surrogate, control characters and astral characters included. */
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
  fc.constantFrom(true, false, null, 0, -1, 1.5, 1e308, -0, 2 ** 53, '', '2030-01-01T00:00:00Z', '2030-02-30T00:00:00Z', 'api_key', 'revoked', 'vault'),
  fc.array(anyText, { maxLength: 3 }),
  fc.dictionary(anyText, anyText, { maxKeys: 3 }),
  fc.integer(),
);

const pathSegment = (name: string, existing: string[]) => {
  const malformed = fc.oneof(anyText.map(encode), badEscape);
  if (name === 'id') return fc.oneof(fc.constantFrom(...existing), fc.constant(randomUUID()), malformed, fc.constantFrom('not-a-uuid', '00000000-0000-0000-0000-000000000000'));
  if (name === 'version') return fc.oneof(fc.constantFrom('1', '2', '0', '-1', '0x1', '1e0', '99999999999999999999', '1.0'), malformed);
  return fc.oneof(fc.constantFrom('fuzz', 'github', 'c-api_key', 'a'.repeat(129)), malformed);
};

const queryString = (names: string[]) =>
  fc
    .array(
      fc.tuple(
        fc.oneof(fc.constantFrom(...(names.length ? names : ['limit'])), anyText.map(encode)),
        fc.oneof(anyText.map(encode), badEscape, fc.constantFrom('', '0x10', '1e1', '-1', 'true', '1', '2030-01-01T00%3A00%3A00Z%00')),
      ),
      { maxLength: 3 },
    )
    .map((pairs) => (pairs.length ? `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}` : ''));

const bodyArbitrary = (fields: string[]) =>
  fc.oneof(
    // documented fields with wrong values, and unknown fields
    fc
      .tuple(fc.subarray(fields.length ? fields : ['value']), fc.array(fieldValue, { minLength: 8, maxLength: 8 }), fc.dictionary(anyText, fieldValue, { maxKeys: 2 }))
      .map(([keys, values, extra]) => ({ body: Buffer.from(JSON.stringify({ ...Object.fromEntries(keys.map((k, i) => [k, values[i]])), ...extra })), contentType: 'application/json' })),
    // any JSON at all
    fc.jsonValue({ maxDepth: 3 }).map((v) => ({ body: Buffer.from(JSON.stringify(v) ?? 'null'), contentType: 'application/json' })),
    // deep nesting
    fc.integer({ min: 30, max: 20_000 }).map((d) => ({ body: Buffer.from(`${'['.repeat(d)}"${MARK}"${']'.repeat(d)}`), contentType: 'application/json' })),
    // not JSON, not UTF-8, other media types
    fc
      .tuple(fc.uint8Array({ maxLength: 40 }), fc.constantFrom('application/json', 'application/x-www-form-urlencoded', 'text/plain', 'application/xml', 'application/json; charset=latin1', 'multipart/form-data'))
      .map(([bytes, contentType]) => ({ body: Buffer.concat([Buffer.from(`{"value":"${MARK}`), Buffer.from(bytes)]), contentType })),
    fc.constant({ body: undefined as Buffer | undefined, contentType: undefined as string | undefined }),
  );

function requestArbitrary(operations: Operation[], existing: string[]): fc.Arbitrary<FuzzRequest> {
  return fc.constantFrom(...operations).chain((op) => {
    const names = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    return fc
      .record({
        segments: fc.tuple(...names.map((n) => pathSegment(n, existing))),
        query: queryString(op.query),
        payload: op.method === 'GET' ? fc.constant({ body: undefined, contentType: undefined }) : bodyArbitrary(op.bodyFields),
        auth: fc.constantFrom<FuzzRequest['auth']>('valid', 'valid', 'valid', 'valid', 'none', 'invalid'),
      })
      .map(({ segments, query, payload, auth }) => {
        let path = op.path;
        names.forEach((n, i) => (path = path.replace(`{${n}}`, segments[i] as string)));
        return { method: op.method, path: `${path}${query}`, body: payload.body, contentType: payload.contentType, auth, secured: op.secured };
      });
  });
}
