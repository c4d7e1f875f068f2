import { request } from 'node:http';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { AuditService } from '@app/audit';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { UNAUTHENTICATED_TENANT } from '../apps/api/src/auth/auth.guard';
import { ShutdownState } from '../apps/api/src/health/shutdown-state';
import { startTestHost, TestHost } from './support/host';
import { stateSnapshot } from './support/state-snapshot';

/**
 * What the host's HTTP surface answers for requests beside its routes: a wrong method on a known path (405 with
 * Allow), HEAD (the probes and the scrape only); and what its request log keeps of a path. One host on SQLite, over
 * real HTTP.
 */
describe('the HTTP surface: methods', () => {
  let host: TestHost;
  const key = generateApiKey('surface-app', 'surface', ['credentials:read', 'credentials:read-value', 'credentials:write']);

  const send = async (method: string, path: string, apiKey: string | null = key.key) => {
    const res = await fetch(`${host.baseUrl}${path}`, { method, headers: apiKey === null ? {} : { 'x-api-key': apiKey } });
    const text = await res.text();
    const json = text && res.headers.get('content-type')?.startsWith('application/json');
    return { status: res.status, headers: res.headers, text, body: (json ? JSON.parse(text) : {}) as Record<string, unknown> };
  };
  const store = async (): Promise<string> => {
    const res = await fetch(`${host.baseUrl}/v1/credentials`, {
      method: 'POST',
      headers: { 'x-api-key': key.key, 'content-type': 'application/json' },
      body: JSON.stringify({ integrationId: 'github', connectionId: `c-${randomBytes(4).toString('hex')}`, type: 'api_key', value: `SECRET-${randomBytes(12).toString('hex')}` }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  };
  /** The audit rows a request wrote (its request id is their correlation id), in the tenant's chain and the unauthenticated one. */
  const auditRowsOf = async (requestId: unknown) => {
    const audit = host.app.get(AuditService);
    await audit.flush();
    const rows = [];
    for (const tenantId of ['surface', UNAUTHENTICATED_TENANT]) rows.push(...(await audit.query({ tenantId, correlationId: String(requestId), limit: 10 })).items);
    return rows;
  };

  beforeAll(async () => {
    host = await startTestHost('sqlite', { AUTH_API_KEYS: JSON.stringify([key.entry]), OAUTH_PROACTIVE_ENABLED: 'false', LOG_LEVEL: 'debug' });
  });
  afterAll(async () => {
    await host?.close();
  });

  describe('a wrong method on a known path is 405 with Allow; an unknown path stays 404', () => {
    it('answers 405 in the error shape, naming the methods the path takes, and changes nothing', async () => {
      const id = await store();
      const answers: Record<string, unknown> = {};
      for (const [method, path] of [
        ['DELETE', `/v1/credentials/${id}/value`],
        ['POST', `/v1/credentials/${id}`],
        ['PUT', '/v1/credentials'],
        ['OPTIONS', '/v1/credentials'],
        ['PUT', '/health/live'],
        ['POST', '/metrics'],
      ]) {
        const before = await stateSnapshot(host.app);
        const r = await send(method, path);
        expect(r.body).toEqual({ statusCode: 405, error: 'METHOD_NOT_ALLOWED', message: expect.stringContaining('Allow header'), code: 90007, codeName: 'METHOD_NOT_ALLOWED', requestId: r.headers.get('x-request-id') });
        expect(r.headers.get('x-content-type-options')).toBe('nosniff');
        expect(await stateSnapshot(host.app)).toEqual(before);
        answers[`${method} ${path.replace(id, ':id')}`] = [r.status, r.headers.get('allow')];
      }
      expect(answers).toEqual({
        'DELETE /v1/credentials/:id/value': [405, 'GET'],
        'POST /v1/credentials/:id': [405, 'GET, PATCH, DELETE'],
        'PUT /v1/credentials': [405, 'GET, POST'],
        'OPTIONS /v1/credentials': [405, 'GET, POST'],
        'PUT /health/live': [405, 'GET, HEAD'],
        'POST /metrics': [405, 'GET, HEAD'],
      });
      // The credential is untouched and still served.
      expect((await send('GET', `/v1/credentials/${id}/value`)).status).toBe(200);
    });

    it('a path no route has is 404 whatever the method, without Allow', async () => {
      for (const [method, path] of [
        ['GET', '/nope'],
        ['DELETE', '/v1/credentialz/abc'],
        ['POST', '/v1/credentials/a/b/c/d'],
        ['GET', '/health'],
      ]) {
        const r = await send(method, path);
        expect({ path, status: r.status, allow: r.headers.get('allow'), message: r.body.message }).toEqual({ path, status: 404, allow: null, message: 'no route matches this method and path' });
      }
    });

    it('is answered before authentication (the route table is public: /docs/json), audits nothing and never echoes the path', async () => {
      const pasted = `ghp_${randomBytes(16).toString('hex')}`;
      const anonymous = await send('DELETE', `/v1/credentials/${pasted}/value`, null);
      const badKey = await send('PUT', `/v1/credentials/${pasted}/versions/1/value`, 'cvk_nobody_invalid');
      expect([anonymous.status, anonymous.headers.get('allow'), badKey.status, badKey.headers.get('allow')]).toEqual([405, 'GET', 405, 'GET']);
      expect(anonymous.text + badKey.text).not.toContain(pasted);
      expect([...(await auditRowsOf(anonymous.body.requestId)), ...(await auditRowsOf(badKey.body.requestId))]).toEqual([]);
      // The document the Allow header agrees with.
      const doc = (await (await fetch(`${host.baseUrl}/docs/json`)).json()) as { paths: Record<string, object> };
      expect(Object.keys(doc.paths['/v1/credentials/{id}/value'])).toEqual(['get']);
    });
  });

  describe('HEAD', () => {
    it('on the probes and the scrape: the status and headers GET answers, no body', async () => {
      for (const path of ['/health/live', '/health/ready', '/metrics']) {
        const get = await send('GET', path, null);
        const head = await send('HEAD', path, null);
        expect({ path, status: head.status, text: head.text, type: head.headers.get('content-type') }).toEqual({ path, status: get.status, text: '', type: get.headers.get('content-type') });
        expect(get.status).toBe(200);
        expect(get.text).not.toBe('');
      }
      // A replica that is draining: readiness is 503 for HEAD as for GET, so a HEAD-checking balancer takes it out too.
      const draining = jest.spyOn(host.app.get(ShutdownState), 'draining', 'get').mockReturnValue(true);
      try {
        expect([(await send('GET', '/health/ready', null)).status, (await send('HEAD', '/health/ready', null)).status]).toEqual([503, 503]);
      } finally {
        draining.mockRestore();
      }
    });

    it('on the OpenAPI document and its UI: what GET answers, no body (a client checking the document with HEAD got 404)', async () => {
      const answers: Record<string, unknown> = {};
      for (const path of ['/docs/json', '/docs-yaml', '/docs', '/docs/swagger-ui-init.js']) {
        const get = await send('GET', path, null);
        const head = await send('HEAD', path, null);
        expect(get.status).toBe(200);
        answers[path] = [head.status, head.text, head.headers.get('content-type')];
        expect(answers[path]).toEqual([200, '', get.headers.get('content-type')]);
      }
      // The UI's static files answered HEAD already (their plugin's own routes).
      expect((await send('HEAD', '/docs/swagger-ui.css', null)).status).toBe(200);
    });

    it('anywhere else is 405 (Allow without HEAD): a value route reads nothing and audits nothing', async () => {
      const id = await store();
      const audit = host.app.get(AuditService);
      const reads = async () => {
        await audit.flush();
        return (await audit.query({ tenantId: 'surface', resource: id, action: ['read'], limit: 100 })).items.length;
      };
      const before = await reads();
      const answers: Record<string, unknown> = {};
      for (const path of [`/v1/credentials/${id}/value`, `/v1/credentials/${id}/versions/1/value`, `/v1/credentials/${id}`, '/v1/oauth/connections/prov/c1/access-token']) {
        const r = await send('HEAD', path);
        answers[path.replace(id, ':id')] = [r.status, r.headers.get('allow')];
      }
      expect(answers).toEqual({
        '/v1/credentials/:id/value': [405, 'GET'],
        '/v1/credentials/:id/versions/1/value': [405, 'GET'],
        '/v1/credentials/:id': [405, 'GET, PATCH, DELETE'],
        '/v1/oauth/connections/prov/c1/access-token': [405, 'GET'],
      });
      expect(await reads()).toBe(before);
    });
  });

  describe('the OpenAPI UI', () => {
    it('loads with every asset from /docs, /docs/ and /docs/index.html (index.html pointed its assets at /docs/docs/…, 404)', async () => {
      const pages: Record<string, unknown> = {};
      for (const path of ['/docs', '/docs/', '/docs/index.html']) {
        const page = await fetch(`${host.baseUrl}${path}`);
        const html = await page.text();
        const assets = [...html.matchAll(/(?:href|src)="([^"]+)"/g)].map((m) => new URL(m[1], page.url).pathname);
        // Each asset read to its end: the host's close waits for answers still being written, and an unread 1.5 MB
        // bundle stays half-written until the garbage collector frees its response (afterAll's close passed 60 s).
        const statuses = await Promise.all(
          assets.map(async (a) => {
            const res = await fetch(`${host.baseUrl}${a}`);
            await res.arrayBuffer();
            return [a, res.status];
          }),
        );
        pages[path] = [page.status, page.headers.get('content-type'), statuses.length, statuses.filter(([, status]) => status !== 200)];
      }
      const loaded = [200, 'text/html', 6, []];
      expect(pages).toEqual({ '/docs': loaded, '/docs/': loaded, '/docs/index.html': loaded });
    });

    // The static files' plugin refuses these 403; the host read that status as its guard's and answered MISSING_SCOPE.
    it('a path out of its folder (`..`, a NUL byte) is refused in the host error shape with the generic host code, never MISSING_SCOPE', async () => {
      const { hostname, port } = new URL(host.baseUrl);
      // Sent as written: fetch would resolve the `..` before sending.
      const get = (path: string) =>
        new Promise<{ status?: number; body: Record<string, unknown> }>((resolve, reject) => {
          const req = request({ host: hostname, port, path }, (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d.toString('utf8')));
            res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) as Record<string, unknown> }));
          });
          req.on('error', reject).end();
        });
      for (const path of ['/docs/../package.json', '/docs/%2e%2e/package.json', '/docs/%00']) {
        expect([path, await get(path)]).toEqual([
          path,
          { status: 403, body: { statusCode: 403, error: 'FORBIDDEN', message: 'Forbidden', code: 90017, codeName: 'HTTP_ERROR', requestId: expect.any(String) } },
        ]);
      }
    });
  });

  describe('the request log', () => {
    /** The access line of the request answered with `requestId`, once written. */
    const accessLine = async (requestId: string | null) => {
      const line = await host.logLine((l) => l.includes(`"id":${JSON.stringify(requestId)}`) && l.includes('"res":'));
      return JSON.parse(line) as { req: { method: string; url: string }; res: { statusCode: number } };
    };

    it('names the route, the parameters that passed validation and the query names routes take, never a token pasted into the path or the query', async () => {
      const pasted = `ghp_${randomBytes(18).toString('hex')}`;
      const id = await store();
      const lines: Array<[number, string, string]> = [];
      for (const [method, path, apiKey] of [
        ['GET', `/v1/credentials/${pasted}/value`, key.key], // fails the id's check: 400
        ['GET', `/v1/credentials/${pasted}/value`, null], // refused before validation: 401
        ['GET', `/v1/credentials/${id}/versions/${pasted}/value`, key.key],
        ['GET', `/v1/credentials/${id}/value?allowExpired=${pasted}`, key.key],
        ['GET', `/v1/credentials/${id}/value?${pasted}&allowExpired=true`, key.key], // a token pasted as a bare name: 400, its name not shown
        ['GET', `/v1/credentials?limit=5&${pasted}=1`, null], // 401, before the route's own check
        ['DELETE', `/v1/connections/github/${pasted}`, key.key], // an identifier-shaped token passes its check: not shown either
        ['DELETE', `/v1/credentials/${pasted}/value`, key.key], // 405
        ['GET', `/v1/credentialz/${pasted}`, key.key], // 404
        ['GET', `/v1/credentials/${id}/versions/1/value`, key.key],
      ] as const) {
        const r = await send(method, path, apiKey);
        const line = await accessLine(r.headers.get('x-request-id'));
        lines.push([line.res.statusCode, line.req.method, line.req.url.replace(id, ':ID')]);
      }
      expect(lines).toEqual([
        [400, 'GET', '/v1/credentials/:id/value'],
        [401, 'GET', '/v1/credentials/:id/value'],
        [400, 'GET', '/v1/credentials/:ID/versions/:version/value'],
        [400, 'GET', '/v1/credentials/:ID/value?allowExpired=[REDACTED]'],
        [400, 'GET', '/v1/credentials/:ID/value?[UNDECLARED]=[REDACTED]&allowExpired=[REDACTED]'],
        [401, 'GET', '/v1/credentials?limit=[REDACTED]&[UNDECLARED]=[REDACTED]'],
        [200, 'DELETE', '/v1/connections/:integrationId/:connectionId'],
        [405, 'DELETE', 'unmatched'],
        [404, 'GET', 'unmatched'],
        [200, 'GET', '/v1/credentials/:ID/versions/1/value'],
      ]);
      expect(host.logs.join('\n')).not.toContain(pasted);
    });

    it('a client that leaves in the middle of its body is an aborted request, not a server failure: no error line, no "database unavailable"', async () => {
      const requestId = `half-body-${randomBytes(4).toString('hex')}`;
      const { port } = new URL(host.baseUrl);
      const socket = connect(Number(port), '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(
        `POST /v1/credentials HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: ${key.key}\r\nx-request-id: ${requestId}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"integrationId":`,
      );
      await new Promise((r) => setTimeout(r, 200));
      socket.destroy();
      const line = JSON.parse(await host.logLine((l) => l.includes(`"id":"${requestId}"`) && l.includes('"res":'))) as { msg: string; res: { statusCode: number } };
      expect([line.msg, line.res.statusCode]).toEqual(['request aborted', 0]);
      // Whatever the host does with the body that never arrived, it is not an error of the server's.
      await new Promise((r) => setTimeout(r, 300));
      const errors = host.logs.filter((l) => l.includes(requestId) && (JSON.parse(l) as { level: number }).level >= 50);
      expect(errors).toEqual([]);
    });

    it("Node's own refusals — an HTTP/1.1 request without Host (400), an Expect it cannot meet (417) — are answered in the error shape, with a request id", async () => {
      const { port } = new URL(host.baseUrl);
      const exchange = (request: string) =>
        new Promise<string>((resolve, reject) => {
          const socket = connect(Number(port), '127.0.0.1');
          let answer = '';
          socket.on('data', (d: Buffer) => (answer += d.toString('utf8')));
          socket.on('error', reject);
          socket.on('close', () => resolve(answer));
          socket.write(request);
          setTimeout(() => socket.end(), 300);
        });
      const answers = [
        await exchange(`GET /v1/credentials HTTP/1.1\r\nx-api-key: ${key.key}\r\n\r\n`),
        await exchange(`POST /v1/credentials HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: ${key.key}\r\ncontent-type: application/json\r\ncontent-length: 2\r\nexpect: a-thing\r\n\r\n{}`),
      ].map((a) => {
        const [head, body] = a.split('\r\n\r\n');
        return { status: head.split(' ')[1], requestId: /x-request-id: ([^\r\n]+)/i.exec(head)?.[1], body: body ? (JSON.parse(body) as Record<string, unknown>) : undefined };
      });
      expect(answers).toEqual([
        { status: '400', requestId: expect.any(String), body: { statusCode: 400, error: 'BAD_REQUEST', message: 'the request is not valid HTTP: HTTP/1.1 needs a Host header', code: 90003, codeName: 'MALFORMED_REQUEST', requestId: answers[0].requestId } },
        { status: '417', requestId: expect.any(String), body: { statusCode: 417, error: 'EXPECTATION_FAILED', message: 'the Expect header asks for what the server does not do (only 100-continue)', code: 90012, codeName: 'EXPECTATION_NOT_SUPPORTED', requestId: answers[1].requestId } },
      ]);
    });

    it('RFC 9112 §3.2: a request with two Host fields, or a Host that is no host[:port], is refused 400 in the error shape before any route runs', async () => {
      const { port } = new URL(host.baseUrl);
      const exchange = (request: string) =>
        new Promise<{ status: string; requestId?: string; body?: Record<string, unknown> }>((resolve, reject) => {
          const socket = connect(Number(port), '127.0.0.1');
          let answer = '';
          socket.on('data', (d: Buffer) => (answer += d.toString('utf8')));
          socket.on('error', reject);
          socket.on('close', () => {
            const [head, body] = answer.split('\r\n\r\n');
            resolve({ status: head.split(' ')[1], requestId: /x-request-id: ([^\r\n]+)/i.exec(head)?.[1], body: body ? (JSON.parse(body) as Record<string, unknown>) : undefined });
          });
          socket.write(request);
          setTimeout(() => socket.end(), 300);
        });
      const get = (hostLines: string, version = '1.1') => exchange(`GET /v1/credentials HTTP/${version}\r\n${hostLines}x-api-key: ${key.key}\r\n\r\n`);
      const refused = (message: string) => ({ status: '400', requestId: expect.any(String), body: { statusCode: 400, error: 'BAD_REQUEST', message, code: 90003, codeName: 'MALFORMED_REQUEST', requestId: expect.any(String) } });
      const twoHosts = 'the request is not valid HTTP: it has more than one Host header';
      const badHost = 'the request is not valid HTTP: its Host header is not a host[:port]';
      const answers = [
        await get('host: 127.0.0.1\r\nhost: evil.example\r\n'),
        await get('Host: 127.0.0.1\r\nHOST: 127.0.0.1\r\n'), // the same value twice too
        await get('host: 127.0.0.1\r\nhost: other.example\r\n', '1.0'),
        await get('host: user@127.0.0.1\r\n'),
        await get('host: 127.0.0.1/v1\r\n'),
      ];
      expect(answers).toEqual([refused(twoHosts), refused(twoHosts), refused(twoHosts), refused(badHost), refused(badHost)]);
      for (const a of answers) expect(a.body?.requestId).toBe(a.requestId);
      // One Host, a name, an address or an IPv6 literal with or without a port, is served.
      for (const h of ['127.0.0.1', `127.0.0.1:${port}`, 'vault.example', '[::1]:8080']) expect((await get(`host: ${h}\r\n`)).status).toBe('200');
    });
  });
});

/**
 * Requests no route serves (404) and known paths asked with a method they do not take (405) are rate limited, so that
 * scanning paths is throttled as guessing keys is — without locking out a known client that hits a wrong URL. One host on
 * SQLite with RATE_LIMIT_PER_MINUTE=5, over real HTTP; every request comes from 127.0.0.1.
 */
describe('the HTTP surface: unmatched requests are rate limited', () => {
  let host: TestHost;
  const reader = generateApiKey('probe-reader', 'probe', ['credentials:read']);
  const scanner = generateApiKey('probe-scanner', 'probe', ['credentials:read']);
  const docsScanner = generateApiKey('probe-docs-scanner', 'probe', ['credentials:read']);

  const send = async (method: string, path: string, apiKey: string | null) => {
    const res = await fetch(`${host.baseUrl}${path}`, { method, headers: apiKey === null ? {} : { 'x-api-key': apiKey } });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
  };
  const unauthenticatedRows = async () => {
    const audit = host.app.get(AuditService);
    await audit.flush();
    return (await audit.query({ tenantId: UNAUTHENTICATED_TENANT, limit: 100 })).items.length;
  };

  beforeAll(async () => {
    host = await startTestHost('sqlite', { AUTH_API_KEYS: JSON.stringify([reader.entry, scanner.entry, docsScanner.entry]), RATE_LIMIT_PER_MINUTE: '5', OAUTH_PROACTIVE_ENABLED: 'false' });
  });
  afterAll(async () => {
    await host?.close();
  });

  it('an anonymous prober: its 404s and 405s count per IP with its failed authentications, past the limit 429; a known client on that IP is not locked out', async () => {
    const rowsBefore = await unauthenticatedRows();
    const answers: number[] = [];
    const probes: Array<[string, string, string | null]> = [
      ['GET', '/.env', null],
      ['GET', '/admin/login', 'cvk_nobody_invalid'],
      ['DELETE', '/v1/credentials', null],
      ['PUT', '/health/live', 'cvk_nobody_invalid'],
      ['GET', '/v1/credentialz', null],
      ['GET', '/wp-login.php', null],
      ['OPTIONS', '/v1/credentials', null],
    ];
    let refused;
    for (const [method, path, apiKey] of probes) {
      const r = await send(method, path, apiKey);
      answers.push(r.status);
      if (r.status === 429) refused = r;
    }
    expect(answers).toEqual([404, 404, 405, 405, 404, 429, 429]);
    expect(refused!.body).toEqual({ statusCode: 429, error: 'TOO_MANY_REQUESTS', message: expect.any(String), code: 90013, codeName: 'RATE_LIMIT_EXCEEDED', requestId: refused!.headers.get('x-request-id') });
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThanOrEqual(59);
    // One counter with the failed authentications: guessing a key on a real route is past the limit too.
    expect((await send('GET', '/v1/credentials', 'cvk_nobody_invalid')).status).toBe(429);
    // Probes are never audited (nor is a refusal past the limit).
    expect(await unauthenticatedRows()).toBe(rowsBefore);
    // A known client on the same IP is served, and its own wrong URL is a 404, not the prober's 429; public routes answer.
    expect((await send('GET', '/v1/credentials', reader.key)).status).toBe(200);
    expect((await send('GET', '/v1/credentialz', reader.key)).status).toBe(404);
    expect((await send('GET', '/health/live', null)).status).toBe(200);
  });

  it('a known client that scans is limited as itself (its own count of unmatched requests), and its routes keep answering', async () => {
    const answers: number[] = [];
    for (let i = 0; i < 7; i++) answers.push((await send(i % 2 ? 'PUT' : 'GET', i % 2 ? '/v1/credentials' : `/v1/scan-${i}`, scanner.key)).status);
    expect(answers).toEqual([404, 405, 404, 405, 404, 429, 429]);
    expect((await send('GET', '/v1/credentials', scanner.key)).status).toBe(200);
    // Another known client is not affected.
    expect((await send('GET', '/v1/credentialz', reader.key)).status).toBe(404);
  });

  it('a file the OpenAPI UI does not have is a 404 counted as the others (its static route matched the path), past the limit 429', async () => {
    const answers: number[] = [];
    for (let i = 0; i < 7; i++) answers.push((await send(i % 2 ? 'HEAD' : 'GET', `/docs/scan-${i}.php`, docsScanner.key)).status);
    expect(answers).toEqual([404, 404, 404, 404, 404, 429, 429]);
    const refused = await send('GET', '/docs/scan-7.php', docsScanner.key);
    expect(refused.body).toEqual({ statusCode: 429, error: 'TOO_MANY_REQUESTS', message: expect.any(String), code: 90013, codeName: 'RATE_LIMIT_EXCEEDED', requestId: refused.headers.get('x-request-id') });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(59);
    // The UI's real files still answer another client.
    const css = await fetch(`${host.baseUrl}/docs/swagger-ui.css`, { headers: { 'x-api-key': reader.key } });
    expect(css.status).toBe(200);
    expect(await css.text()).toContain('.swagger-ui');
  });
});
