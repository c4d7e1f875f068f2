import { format, inspect } from 'node:util';
import { runInNewContext } from 'node:vm';
import type { ResolvedOAuthProvider } from '../providers/oauth-provider.config';
import { Oauth4webapiTokenClient } from './oauth4webapi-token-client';
import { TokenEndpointFailure } from './oauth-token-client';

/** What a network error's or a provider's text may carry. */
const MARKER = 'MARKER-token-client-c0de';

const provider = {
  integrationId: 'idp',
  tokenEndpoint: 'https://idp.test/token',
  clientId: 'client-1',
  clientAuthMethod: 'client_secret_post',
  scopes: [],
  requestTimeoutMs: 5000,
  allowInsecureRequests: false,
} as unknown as ResolvedOAuthProvider;

/** The TokenEndpointFailure a refresh fails with while `fetch` does `answer`. */
async function failure(answer: () => Promise<Response>): Promise<TokenEndpointFailure> {
  jest.spyOn(globalThis, 'fetch').mockImplementation(answer);
  const e = await new Oauth4webapiTokenClient().refresh(provider, 'rt-1', 'secret-1').then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(TokenEndpointFailure);
  return e as TokenEndpointFailure;
}

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

describe('Oauth4webapiTokenClient: failure messages', () => {
  afterEach(() => jest.restoreAllMocks());

  it("names a network failure by its cause's code, else 'network error', never by fetch's message; its transport detail says the same", async () => {
    // undici's: `fetch failed`, the address in its cause's message.
    const refused = await failure(() => Promise.reject(new TypeError('fetch failed', { cause: Object.assign(new Error(`connect ECONNREFUSED ${MARKER}`), { code: 'ECONNREFUSED' }) })));
    expect(refused.kind).toBe('transient');
    expect(refused.message).toBe('the token endpoint is unreachable (ECONNREFUSED)');
    expect(refused.details).toEqual({ transport: 'ECONNREFUSED' });
    const bare = await failure(() => Promise.reject(new TypeError('fetch failed', { cause: new Error(`unknown scheme ${MARKER}`) })));
    expect(bare.message).toBe('the token endpoint is unreachable (network error)');
    expect(bare.details).toEqual({ transport: 'network_error' });
    // fetch's TypeError is of Node's own realm, not of a VM context this code may run in (jest's): told by name.
    const foreign = Object.assign(runInNewContext(`new TypeError('fetch failed')`) as Error, { cause: Object.assign(new Error(MARKER), { code: 'ECONNRESET' }) });
    expect(foreign).not.toBeInstanceOf(TypeError);
    expect(await failure(() => Promise.reject(foreign))).toMatchObject({ message: 'the token endpoint is unreachable (ECONNRESET)', details: { transport: 'ECONNRESET' } });
    const timedOut = await failure(() => Promise.reject(new DOMException(`timed out ${MARKER}`, 'TimeoutError')));
    expect(timedOut).toMatchObject({ kind: 'transient', message: 'the token endpoint did not answer in time', details: { transport: 'timeout' } });
  });

  it('a TypeError that is not fetch failing (a bug in a fetch wrapper, oauth4webapi refusing what it was given) is not told as a network failure', async () => {
    // An instrumented fetch's own bug: no request may have left.
    const bug = await failure(() => Promise.reject(new TypeError("Cannot read properties of undefined (reading 'headers')")));
    expect(bug.message).not.toMatch(/unreachable/);
    expect(bug.details.transport).toBeUndefined();
    // oauth4webapi's argument check (its TypeError, ERR_INVALID_ARG_TYPE) of an answer that is not a Response.
    const notAResponse = await failure(() => Promise.resolve({} as unknown as Response));
    expect(notAResponse.message).not.toMatch(/unreachable/);
    expect(notAResponse.details.transport).toBeUndefined();
  });

  it("reads a 401 challenge's OAuth error (oidc-provider refuses a wrong client secret so), a registered code only", async () => {
    const challenge = (header: string) => () =>
      Promise.resolve(new Response(JSON.stringify({ error: 'invalid_client' }), { status: 401, headers: { 'content-type': 'application/json', 'www-authenticate': header } }));
    const refused = await failure(challenge(`Basic error="invalid_client", error_description="client ${MARKER} failed"`));
    expect(refused).toMatchObject({ kind: 'rejected', details: { status: 401, oauthError: 'invalid_client' } });
    expect(inspect(refused, { depth: 5 })).not.toContain(MARKER);
    const unregistered = await failure(challenge(`Basic error="${MARKER}"`));
    expect(unregistered.details).toEqual({ status: 401, oauthError: 'unregistered_error' });
    // No error in the challenge: the body's (oauth4webapi throws on the challenge before reading it).
    expect((await failure(challenge('Basic realm="idp"'))).details).toEqual({ status: 401, oauthError: 'invalid_client' });
  });

  it('a refresh token refused with a challenge (a 401 or 400 with WWW-Authenticate) is still invalid_grant, not a refused client', async () => {
    const answer = (status: number, header: string, body: unknown) => () =>
      Promise.resolve(new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', 'www-authenticate': header } }));
    for (const [status, header, body] of [
      [401, 'Bearer realm="idp"', { error: 'invalid_grant', error_description: `token ${MARKER} expired` }],
      [400, 'Basic realm="idp"', { error: 'invalid_grant' }],
      [401, 'Bearer error="invalid_grant"', {}],
    ] as const) {
      const refused = await failure(answer(status, header, body));
      expect(refused).toMatchObject({ kind: 'invalid_grant', details: { status, oauthError: 'invalid_grant' } });
      expect(inspect(refused, { depth: 5 })).not.toContain(MARKER);
    }
    // A challenge on a provider's outage is still an outage; one with no error anywhere is a refused client.
    expect((await failure(answer(503, 'Bearer realm="idp"', { error: 'temporarily_unavailable' }))).kind).toBe('transient');
    const bare = await failure(() => Promise.resolve(new Response('nope', { status: 401, headers: { 'www-authenticate': 'Basic realm="idp"' } })));
    expect(bare).toMatchObject({ kind: 'rejected', details: { status: 401 } });
    expect(bare.details.oauthError).toBeUndefined();
  });

  it("keeps the provider's OAuth error only when it is a registered code, and never its description", async () => {
    const client = await failure(async () => json(401, { error: 'invalid_client', error_description: `client ${MARKER} unknown` }));
    expect(client).toMatchObject({ kind: 'rejected', message: 'the token endpoint answered invalid_client (HTTP 401)', details: { status: 401, oauthError: 'invalid_client' } });
    const odd = await failure(async () => json(400, { error: `refresh_token ${MARKER} is bad` }));
    // A provider (or a proxy) that echoes the refresh token it was sent as its "error": shaped like a code, not one.
    const echoed = 'ghr_Zq9xW3abcdefghijklmnop0123456789';
    const echo = await failure(async () => json(400, { error: echoed }));
    for (const f of [odd, echo]) {
      expect(f.message).toBe('the token endpoint answered unregistered_error (HTTP 400)');
      expect(f.details.oauthError).toBe('unregistered_error');
    }
    for (const f of [client, odd, echo]) expect(JSON.stringify({ message: f.message, details: f.details })).not.toMatch(new RegExp(`${MARKER}|${echoed}`));
  });
});

describe('Oauth4webapiTokenClient: a 200 it cannot use', () => {
  afterEach(() => jest.restoreAllMocks());
  const rotated = `rt-rotated-${MARKER}`;

  it.each([
    ['a negative expires_in', { access_token: 'at-1', token_type: 'Bearer', expires_in: -5 }],
    ['no access_token', { token_type: 'Bearer', expires_in: 60 }],
    ['an unsupported token_type', { access_token: 'at-1', token_type: 'mac', expires_in: 60 }],
  ])('with %s: an invalid response carrying the rotated refresh token, which no serialisation shows', async (_name, body) => {
    const f = await failure(async () => json(200, { ...body, refresh_token: rotated }));
    expect(f.kind).toBe('invalid_response');
    expect(f.rotatedRefreshToken).toBe(rotated);
    expect(JSON.stringify(f)).not.toContain(MARKER);
    expect(Object.keys(f)).not.toContain('rotatedRefreshToken');
    expect(`${f.message} ${f.stack}`).not.toContain(MARKER);
    // Nor an inspection that shows hidden properties (util.inspect's showHidden, console.log's or util.format's `%o`), wrapped or not.
    const wrapped = new Error('refresh failed', { cause: f });
    for (const shown of [inspect(f, { showHidden: true }), inspect(wrapped, { showHidden: true, depth: 10 }), format('%o', wrapped)]) expect(shown).not.toContain(MARKER);
  });

  it('without a refresh_token, or with a body that is not JSON: nothing to keep', async () => {
    expect((await failure(async () => json(200, { access_token: 'at-1', token_type: 'Bearer', expires_in: -5 }))).rotatedRefreshToken).toBeUndefined();
    const html = await failure(async () => new Response('<html>ok</html>', { status: 200, headers: { 'content-type': 'text/html' } }));
    expect(html).toMatchObject({ kind: 'invalid_response' });
    expect(html.rotatedRefreshToken).toBeUndefined();
  });
});
