import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oauth from 'oauth4webapi';
import type Provider from 'oidc-provider';

/**
 * A REAL OAuth 2.0 / OpenID Connect authorization server for integration tests: `oidc-provider`
 * (the certified Node implementation) on 127.0.0.1:<random port>, with a confidential client that
 * may use the authorization-code and refresh-token grants.
 *
 * The login/consent "interaction" is answered by this server itself (no browser): it creates a
 * Grant for the configured account and finishes the interaction, so `authorize()` runs the full
 * authorization-code flow with PKCE over real HTTP and returns the token response.
 *
 * Test controls: count token-endpoint calls, make the token endpoint fail (HTTP status or a dropped
 * connection), switch refresh-token rotation (rotate / reuse / omit from the response), edit its answers, change the
 * access-token lifetime, and revoke every grant (→ `invalid_grant` on the next refresh).
 */

/** How the server answers a successful refresh grant. */
export type RefreshTokenMode =
  /** New refresh token each time; reusing a rotated one fails with invalid_grant (and revokes the grant). */
  | 'rotate'
  /** Same refresh token is returned again. */
  | 'reuse'
  /** No `refresh_token` in the response at all (Google-style); the old one stays valid. */
  | 'omit';

/** A fault injected in front of the token endpoint. */
export type TokenEndpointFault =
  | { kind: 'status'; status: number; error?: string; retryAfterSeconds?: number }
  /** The TCP connection is destroyed without a response (network failure / server down). */
  | { kind: 'drop' };

export interface TestOAuthServerOptions {
  /** Access-token lifetime in seconds (changeable later with `setAccessTokenTtl`). @default 3600 */
  accessTokenTtlSeconds?: number;
  /** @default 'rotate' */
  refreshTokenMode?: RefreshTokenMode;
  /** Client authentication the client is registered with. @default 'client_secret_basic' */
  tokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post';
  /** Artificial delay (ms) before the token endpoint answers, e.g. to widen race windows. @default 0 */
  tokenEndpointDelayMs?: number;
}

export interface TokenEndpointCall {
  grantType: string | undefined;
  /** HTTP status the client received (0 for a dropped connection). */
  status: number;
}

export class TestOAuthServer {
  readonly clientId = 'cv-test-client';
  readonly clientSecret = 'cv-test-client-secret-0123456789abcdef';
  readonly redirectUri = 'http://127.0.0.1/oauth/callback';
  readonly accountId = 'user-1';
  /** Every request that reached the token endpoint, in order (including injected failures). */
  readonly tokenCalls: TokenEndpointCall[] = [];

  private accessTokenTtl: number;
  private refreshMode: RefreshTokenMode;
  private fault: TokenEndpointFault | undefined;
  private delayMs: number;
  private rewrite: ((body: Record<string, unknown>) => void) | undefined;
  private readonly grantIds = new Set<string>();

  private constructor(
    private readonly server: Server,
    readonly issuer: string,
    private readonly provider: Provider,
    options: TestOAuthServerOptions,
  ) {
    this.accessTokenTtl = options.accessTokenTtlSeconds ?? 3600;
    this.refreshMode = options.refreshTokenMode ?? 'rotate';
    this.delayMs = options.tokenEndpointDelayMs ?? 0;
  }

  /** Starts oidc-provider on 127.0.0.1 with a random port. Call `close()` in afterAll. */
  static async start(options: TestOAuthServerOptions = {}): Promise<TestOAuthServer> {
    silenceOidcProviderWarnings();
    const { default: OidcProvider } = await import('oidc-provider');
    // Filled in below: the server must listen (to know its port = issuer) before the provider exists.
    const late: { handler?: (req: IncomingMessage, res: ServerResponse) => void; self?: TestOAuthServer } = {};
    const server = createServer((req, res) => (late.handler ? late.handler(req, res) : res.writeHead(503).end()));
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const provider = new OidcProvider(issuer, {
      clients: [
        {
          client_id: 'cv-test-client',
          client_secret: 'cv-test-client-secret-0123456789abcdef',
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          redirect_uris: ['http://127.0.0.1/oauth/callback'],
          token_endpoint_auth_method: options.tokenEndpointAuthMethod ?? 'client_secret_basic',
        },
      ],
      interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
      features: { devInteractions: { enabled: false } },
      cookies: { keys: ['cv-test-cookie-key-1'] },
      pkce: { required: () => true },
      issueRefreshToken: async () => true,
      rotateRefreshToken: () => late.self?.refreshMode === 'rotate',
      ttl: {
        AccessToken: () => late.self?.accessTokenTtl ?? 3600,
        RefreshToken: 14 * 24 * 3600,
        Grant: 14 * 24 * 3600,
        Session: 3600,
        Interaction: 600,
        AuthorizationCode: 60,
        IdToken: 3600,
      },
      findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
    });
    provider.proxy = false;
    const self = new TestOAuthServer(server, issuer, provider, options);
    late.self = self;
    provider.use(async (ctx: never, next: () => Promise<void>) => self.tokenEndpointMiddleware(ctx as KoaContext, next));
    const callback = provider.callback();
    late.handler = (req, res) => {
      const url = new URL(req.url ?? '/', issuer);
      if (req.method === 'GET' && url.pathname.startsWith('/interaction/')) {
        self.finishInteraction(req, res).catch((e: Error) => {
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`interaction failed: ${e.message}`);
        });
        return;
      }
      callback(req, res);
    };
    return self;
  }

  /** Token-endpoint requests of one grant type (all when omitted) since start / the last reset. */
  tokenCallCount(grantType?: string): number {
    return this.tokenCalls.filter((c) => grantType === undefined || c.grantType === grantType).length;
  }

  /** Refresh-token grant requests that reached the token endpoint. */
  get refreshCalls(): number {
    return this.tokenCallCount('refresh_token');
  }

  resetCounters(): void {
    this.tokenCalls.length = 0;
  }

  setAccessTokenTtl(seconds: number): void {
    this.accessTokenTtl = seconds;
  }

  setRefreshTokenMode(mode: RefreshTokenMode): void {
    this.refreshMode = mode;
  }

  setTokenEndpointDelay(ms: number): void {
    this.delayMs = ms;
  }

  /** Edits the body of every successful refresh-grant answer (after the grant was processed) until `clearFault()`. */
  rewriteRefreshResponses(edit: (body: Record<string, unknown>) => void): void {
    this.rewrite = edit;
  }

  /** Makes every token-endpoint request fail until `clearFault()`. */
  failTokenEndpoint(fault: TokenEndpointFault): void {
    this.fault = fault;
  }

  clearFault(): void {
    this.fault = undefined;
    this.rewrite = undefined;
  }

  /** Destroys every grant issued so far: their refresh tokens now get `invalid_grant`. */
  async revokeAllGrants(): Promise<void> {
    for (const id of this.grantIds) {
      const grant = await this.provider.Grant.find(id);
      if (grant) await grant.destroy();
    }
  }

  /** Destroys the grant a refresh token belongs to: that token (and its rotations) now get `invalid_grant`. */
  async revokeGrantOf(refreshToken: string): Promise<void> {
    const token = await this.provider.RefreshToken.find(refreshToken);
    if (!token) throw new Error('unknown refresh token');
    const grant = await this.provider.Grant.find(token.grantId);
    await grant?.destroy();
  }

  /** Runs the authorization-code flow with PKCE (no browser) and returns the token response. */
  async authorize(scope = 'openid'): Promise<oauth.TokenEndpointResponse> {
    const as = await this.discover();
    const client: oauth.Client = { client_id: this.clientId };
    const codeVerifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const authUrl = new URL(as.authorization_endpoint!);
    authUrl.search = new URLSearchParams({
      client_id: this.clientId,
      redirect_uri: this.redirectUri,
      response_type: 'code',
      scope,
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
    }).toString();

    const callback = await this.followToRedirectUri(authUrl);
    const params = oauth.validateAuthResponse(as, client, callback, state);
    const response = await oauth.authorizationCodeGrantRequest(
      as,
      client,
      oauth.ClientSecretBasic(this.clientSecret),
      params,
      this.redirectUri,
      codeVerifier,
      { [oauth.allowInsecureRequests]: true },
    );
    return oauth.processAuthorizationCodeResponse(as, client, response);
  }

  /** A refresh grant made directly (not through the code under test), e.g. to prove a token is dead. */
  async refreshDirect(refreshToken: string): Promise<oauth.TokenEndpointResponse> {
    const as = await this.discover();
    const client: oauth.Client = { client_id: this.clientId };
    const response = await oauth.refreshTokenGrantRequest(as, client, oauth.ClientSecretBasic(this.clientSecret), refreshToken, {
      [oauth.allowInsecureRequests]: true,
    });
    return oauth.processRefreshTokenResponse(as, client, response);
  }

  /** Whether the server still accepts an access token (token introspection). */
  async isAccessTokenActive(accessToken: string): Promise<boolean> {
    const token = await this.provider.AccessToken.find(accessToken);
    return Boolean(token && !token.isExpired);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async discover(): Promise<oauth.AuthorizationServer> {
    const issuer = new URL(this.issuer);
    const response = await oauth.discoveryRequest(issuer, { [oauth.allowInsecureRequests]: true });
    return oauth.processDiscoveryResponse(issuer, response);
  }

  /** GET with redirect:'manual' and a small cookie jar until the redirect URI is reached. */
  private async followToRedirectUri(start: URL): Promise<URL> {
    const jar = new Map<string, string>();
    let url = start;
    for (let hop = 0; hop < 10; hop++) {
      const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
      for (const line of res.headers.getSetCookie()) {
        const [pair] = line.split(';');
        const eq = pair.indexOf('=');
        jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
      }
      const location = res.headers.get('location');
      await res.arrayBuffer();
      if (!location) throw new Error(`authorization flow stopped at ${url.pathname} with HTTP ${res.status}`);
      url = new URL(location, url);
      if (url.href.startsWith(this.redirectUri)) return url;
    }
    throw new Error('authorization flow did not reach the redirect URI');
  }

  private async finishInteraction(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const details = await this.provider.interactionDetails(req, res);
    const clientId = details.params.client_id as string;
    const grant = new this.provider.Grant({ accountId: this.accountId, clientId });
    grant.addOIDCScope(String(details.params.scope ?? 'openid'));
    const grantId: string = await grant.save();
    this.grantIds.add(grantId);
    await this.provider.interactionFinished(
      req,
      res,
      { login: { accountId: this.accountId }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
  }

  private async tokenEndpointMiddleware(ctx: KoaContext, next: () => Promise<void>): Promise<void> {
    if (ctx.path !== '/token' || ctx.method !== 'POST') return next();
    const call: TokenEndpointCall = { grantType: await peekGrantType(ctx), status: 0 };
    this.tokenCalls.push(call);
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const fault = this.fault;
    if (fault?.kind === 'drop') {
      ctx.req.socket.destroy();
      ctx.respond = false;
      return;
    }
    if (fault?.kind === 'status') {
      ctx.status = fault.status;
      if (fault.retryAfterSeconds !== undefined) ctx.set('retry-after', String(fault.retryAfterSeconds));
      ctx.body = { error: fault.error ?? 'server_error', error_description: 'injected by the test' };
      call.status = fault.status;
      return;
    }
    await next();
    call.status = ctx.status;
    const body = ctx.body as Record<string, unknown> | undefined;
    if (this.refreshMode === 'omit' && call.grantType === 'refresh_token' && body && typeof body === 'object') {
      delete body.refresh_token;
    }
    if (this.rewrite && call.grantType === 'refresh_token' && ctx.status === 200 && body && typeof body === 'object') this.rewrite(body);
  }
}

/**
 * oidc-provider prints development warnings (Node 20 runtime, in-memory adapter, dev signing keys,
 * our body peeking) through console.warn; they are expected for a test server. Other warnings pass.
 */
function silenceOidcProviderWarnings(): void {
  const current = console.warn as typeof console.warn & { oidcFiltered?: boolean };
  if (current.oidcFiltered) return;
  const filtered = Object.assign(
    (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].startsWith('oidc-provider WARNING')) return;
      current.apply(console, args);
    },
    { oidcFiltered: true },
  );
  console.warn = filtered;
}

/** The subset of koa's context the middleware touches. */
interface KoaContext {
  path: string;
  method: string;
  status: number;
  body: unknown;
  respond?: boolean;
  req: IncomingMessage;
  set(name: string, value: string): void;
  // oidc-provider's body parser reads the stream once; we read a clone it leaves in place.
  request: { body?: Record<string, unknown> };
}

/**
 * Reads `grant_type` from the form body. oidc-provider parses the body later from the raw stream, so
 * we buffer it here and hand the parsed form on through `ctx.request.body`, which its parser reuses.
 */
async function peekGrantType(ctx: KoaContext): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
  const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  ctx.request.body = Object.fromEntries(form);
  return form.get('grant_type') ?? undefined;
}
