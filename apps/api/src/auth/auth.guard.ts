import { CanActivate, ExecutionContext, Injectable, Logger, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { InjectThrottlerOptions, InjectThrottlerStorage, ThrottlerException, type ThrottlerModuleOptions, type ThrottlerStorage } from '@nestjs/throttler';
// The metadata keys @SkipThrottle() and @Throttle() write (not re-exported by the package's index).
import { THROTTLER_BLOCK_DURATION, THROTTLER_LIMIT, THROTTLER_SKIP, THROTTLER_TTL } from '@nestjs/throttler/dist/throttler.constants';
import { AuditAction, AuditResult, AuditService } from '@app/audit';
import { describeError, type OperationContext } from '@app/common';
import { MissingScopeException } from '../http/host-errors';
import { routePattern } from '../http/route-pattern';
import { declaredInput, DeferredBody, parseBody, RAW_BODY_ROUTE, refuseUndeclaredInput, type DeclaredInput } from '../http/request-body';
import { AuthenticationFailed, AuthService } from './auth.service';
import { FixedWindowThrottlerStorage } from './fixed-window-throttler.storage';
import { BODY_SCOPES, IS_PUBLIC, REQUIRED_SCOPES, type BodyScopes } from './auth.decorators';
import { hasScope, Principal, Scope, UNAUTHENTICATED_TENANT } from './scopes';

/** Audit chain for requests whose tenant is unknown because authentication failed. */
export { UNAUTHENTICATED_TENANT };

/** The message of a 429: what to do, in the host's words (the throttler's own names its class). */
export const RATE_LIMITED_MESSAGE = 'too many requests: RATE_LIMIT_PER_MINUTE per client and route (failed authentications per address); retry after Retry-After seconds';

interface Req {
  headers: Record<string, string>;
  principal?: Principal;
  ip?: string;
  id?: string;
  method?: string;
  url?: string;
  routeOptions?: { url?: string };
  body?: unknown;
}

type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

interface Reply {
  header(name: string, value: number | string): unknown;
}

/** What a 401 names as the ways to authenticate (RFC 9110 §11.6.1: a 401 carries the challenges). */
const AUTHENTICATE_CHALLENGES = 'Bearer realm="credential-vault", ApiKey realm="credential-vault", header="X-API-Key"';

/** One rate limit as it applies to one route. */
interface RouteLimit {
  name: string;
  limit: number;
  ttl: number;
  blockDuration: number;
  /** `<Controller>-<handler>-<throttler>-`: the tracker completes the storage key. */
  keyPrefix: string;
  /** Response header names, lower case as Fastify stores them (`-<name>` appended for a throttler other than the default). */
  headers: { limit: string; remaining: string; reset: string; retryAfter: string };
}

/** What the guard does for one route, read once from its decorators. */
interface RoutePlan {
  isPublic: boolean;
  scopes: Scope[];
  /** More scopes when the body sets a field to a value (@RequireScopesWhenBody()). */
  bodyScopes: BodyScopes | undefined;
  limits: RouteLimit[];
  rawBody: boolean;
  /** Query names and body the route declares (anything else is 400). */
  input: DeclaredInput;
}

/**
 * The host's one global guard, in this order: authenticate (every route unless @Public(); failures and
 * denials are audited, so the audit lib's suspicious-activity detector sees repeated failures per
 * actor; failed authentications are counted first, per IP across all routes, and past the limit answered
 * 429 without an audit row), enforce @RequireScopes(), count the request against the rate limit per client (unless
 * @SkipThrottle(); 429 with Retry-After past it), then parse the deferred body — so an anonymous or
 * throttled caller's body is never parsed. One guard with each route's decorators read once, where
 * three guards re-read them through the Reflector and awaited each other on every request.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly logger = new Logger(AuthGuard.name);
  private readonly plans = new Map<object, Map<object, RoutePlan>>();
  private readonly throttlers: Array<{ name: string; limit: number; ttl: number; blockDuration?: number }>;
  /** The in-process storage, counted without a promise per request; undefined for any other storage. */
  private readonly localStorage: FixedWindowThrottlerStorage | undefined;
  /**
   * What a failed authentication counts against, whatever the route's own @SkipThrottle(): every configured
   * limit, one count per IP across all routes, so guessing keys is bounded and so are the refusals' audit
   * rows. (A missing scope is not counted: its caller is known, and the suspicious-activity detector needs
   * to see every such denial.)
   */
  private readonly failedAuthenticationLimits: RouteLimit[];
  /** What an authenticated client's requests that no route serves count against: every configured limit, per client, as one route. */
  private readonly unmatchedLimits: RouteLimit[];

  constructor(
    private readonly auth: AuthService,
    private readonly reflector: Reflector,
    private readonly audit: AuditService,
    @InjectThrottlerOptions() options: ThrottlerModuleOptions,
    @InjectThrottlerStorage() private readonly storage: ThrottlerStorage,
  ) {
    const list = Array.isArray(options) ? options : options.throttlers;
    this.throttlers = list.map((t) => ({
      name: t.name ?? 'default',
      limit: numberOption(t.limit, 'limit'),
      ttl: numberOption(t.ttl, 'ttl'),
      blockDuration: t.blockDuration === undefined ? undefined : numberOption(t.blockDuration, 'blockDuration'),
    }));
    this.localStorage = storage instanceof FixedWindowThrottlerStorage ? storage : undefined;
    this.failedAuthenticationLimits = this.throttlers.map((t) => routeLimit(t, failedAuthenticationKey(t.name, ''), t.limit, t.ttl, t.blockDuration ?? t.ttl));
    this.unmatchedLimits = this.throttlers.map((t) => routeLimit(t, `unmatched-${t.name}-`, t.limit, t.ttl, t.blockDuration ?? t.ttl));
  }

  /**
   * Counts a request no route serves (404) or a known path asked with a method it does not take (405), so that
   * scanning paths is throttled as guessing keys is; the host's routing hook calls it, a routed request never does.
   * Without valid credentials, one hit on the IP's failed-authentication counter (one budget for probing paths and
   * keys; past it 429 for both). With them, one hit on the client's own counter of unmatched requests, as if they were
   * one route: a known client that hits a wrong URL is not taken for a prober, and does not spend its IP's budget (its
   * neighbours behind one NAT). Never audited. Rejects with a ThrottlerException past the limit (Retry-After set).
   */
  async countUnmatched(req: { headers: Record<string, string | string[] | undefined>; ip?: string }, reply: Reply): Promise<void> {
    let principal: Principal | undefined;
    try {
      principal = await this.auth.authenticate(req.headers);
    } catch (e) {
      if (!(e instanceof AuthenticationFailed)) throw e;
    }
    await (principal ? this.count(this.unmatchedLimits, principal.id, reply) : this.count(this.failedAuthenticationLimits, req.ip ?? '', reply));
  }

  // The request path awaits only what can be asynchronous: the authentication and a shared (Redis) counter.
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const plan = this.planFor(context);
    const http = context.switchToHttp();
    const req = http.getRequest<Req>();
    if (!plan.isPublic) {
      let principal: Principal;
      try {
        principal = await this.auth.authenticate(req.headers);
      } catch (e) {
        // Counted before the refusal is audited: past the limit a guesser gets 429s, and the log no rows.
        if (e instanceof AuthenticationFailed) {
          await this.count(this.failedAuthenticationLimits, req.ip ?? '', http.getResponse<Reply>());
          http.getResponse<Reply>().header('www-authenticate', AUTHENTICATE_CHALLENGES);
        }
        return this.refuseAuthentication(req, e);
      }
      req.principal = principal;
      for (const scope of plan.scopes) if (!hasScope(principal, scope)) return this.refuseScopes(req, principal, plan.scopes);
    }
    if (plan.limits.length > 0) {
      // One hit per client (the principal; the IP on public routes) and route.
      const counted = this.count(plan.limits, req.principal ? req.principal.id : `ip:${req.ip}`, http.getResponse<Reply>());
      if (counted) await counted;
    }
    if (!plan.isPublic) refuseUndeclaredInput(req, plan.input, plan.rawBody);
    if (req.body instanceof DeferredBody) req.body = plan.rawBody ? req.body.raw : parseBody(req.body);
    if (plan.bodyScopes && req.principal && bodyField(req.body, plan.bodyScopes.field) === plan.bodyScopes.value) {
      const needed = [...plan.scopes, ...plan.bodyScopes.scopes];
      if (!needed.every((s) => hasScope(req.principal as Principal, s))) return this.refuseScopes(req, req.principal, needed);
    }
    return true;
  }

  /**
   * One hit of `client` against `limits` (rate-limit headers; 429 past one). Synchronous with the in-process
   * storage (no promise per request); a shared (Redis) counter answers a promise. The key holds no secret,
   * so it is not hashed here; the Redis storage hashes it before it leaves the process.
   */
  private count(limits: RouteLimit[], client: string, reply: Reply): Promise<void> | undefined {
    const local = this.localStorage;
    if (local) {
      for (const limit of limits) answerLimit(limit, local.hit(limit.keyPrefix + client, limit.ttl, limit.limit, limit.blockDuration, limit.name), reply);
      return undefined;
    }
    return (async () => {
      for (const limit of limits) answerLimit(limit, await this.storage.increment(limit.keyPrefix + client, limit.ttl, limit.limit, limit.blockDuration, limit.name), reply);
    })();
  }

  /**
   * One hit of a scan of the gRPC port from `ip` — a call to a method the server does not serve, a request that is not
   * gRPC — on the IP's failed-authentication counter, as countUnmatched counts HTTP's 404s and 405s without credentials
   * (grpc-js answers these before any metadata is read: the credentials are not at hand). Resolves with the seconds
   * until the block ends when past the limit, else undefined.
   */
  async countGrpcScan(ip: string): Promise<number | undefined> {
    for (const limit of this.failedAuthenticationLimits) {
      const hit = await this.storage.increment(limit.keyPrefix + ip, limit.ttl, limit.limit, limit.blockDuration, limit.name);
      if (hit.isBlocked) return Math.max(1, hit.timeToBlockExpire);
    }
    return undefined;
  }

  private async refuseAuthentication(req: Req, e: unknown): Promise<never> {
    if (!(e instanceof AuthenticationFailed)) throw e;
    await this.auditRefusal(req, AuditAction.AUTH_FAILURE, { tenantId: UNAUTHENTICATED_TENANT, actor: claimedActor(req) }, 'UNAUTHENTICATED');
    throw new UnauthorizedException(e.message);
  }

  private async refuseScopes(req: Req, principal: Principal, needed: Scope[]): Promise<never> {
    const missing = needed.filter((s) => !hasScope(principal, s));
    await this.auditRefusal(req, AuditAction.ACCESS_DENIED, { tenantId: principal.tenantId, actor: { id: principal.id } }, 'MISSING_SCOPE', { missing });
    throw new MissingScopeException(`missing scope: ${missing.join(', ')}`);
  }

  private planFor(context: ExecutionContext): RoutePlan {
    const controller = context.getClass();
    const handler = context.getHandler();
    let byHandler = this.plans.get(controller);
    if (byHandler === undefined) this.plans.set(controller, (byHandler = new Map()));
    let plan = byHandler.get(handler);
    if (plan === undefined) byHandler.set(handler, (plan = this.readPlan(controller, handler)));
    return plan;
  }

  private readPlan(controller: object, handler: object): RoutePlan {
    const targets = [handler, controller] as Array<() => unknown>;
    const override = (key: string) => this.reflector.getAllAndOverride<unknown>(key, targets);
    const limits: RouteLimit[] = [];
    for (const t of this.throttlers) {
      if (override(THROTTLER_SKIP + t.name)) continue;
      const ttl = numberOption(override(THROTTLER_TTL + t.name) ?? t.ttl, 'ttl');
      limits.push(
        routeLimit(
          t,
          `${(controller as { name: string }).name}-${(handler as { name: string }).name}-${t.name}-`,
          numberOption(override(THROTTLER_LIMIT + t.name) ?? t.limit, 'limit'),
          ttl,
          numberOption(override(THROTTLER_BLOCK_DURATION + t.name) ?? t.blockDuration ?? ttl, 'blockDuration'),
        ),
      );
    }
    return {
      isPublic: override(IS_PUBLIC) === true,
      scopes: (override(REQUIRED_SCOPES) as Scope[] | undefined) ?? [],
      bodyScopes: this.reflector.get<BodyScopes | undefined>(BODY_SCOPES, handler as () => unknown),
      limits,
      rawBody: this.reflector.get<boolean>(RAW_BODY_ROUTE, handler as () => unknown) === true,
      input: declaredInput(controller, handler as { name: string }),
    };
  }

  private async auditRefusal(
    req: Req,
    action: AuditAction,
    who: Pick<OperationContext, 'tenantId' | 'actor'>,
    errorCode: string,
    details: Record<string, unknown> = {},
  ): Promise<void> {
    try {
      await this.audit.recordRead({
        action,
        context: { ...who, actor: { ...who.actor, ip: req.ip, userAgent: req.headers['user-agent']?.slice(0, 256) }, correlationId: req.id },
        // The route's pattern, not the path: the audit log is never edited, and a path segment is whatever the client sent.
        resource: `${req.method ?? ''} ${routePattern(req)}`,
        result: AuditResult.DENIED,
        errorCode,
        details,
      });
    } catch (e) {
      // The refusal stands either way; a failing audit log is reported by the audit lib's own health.
      this.logger.warn(`Could not audit a refused request: ${describeError(e)}`);
    }
  }
}

/** The counter of failed authentications from one IP, shared by HTTP and gRPC (a throttler's key). */
export function failedAuthenticationKey(throttler: string, ip: string): string {
  return `failed-authentication-${throttler}-ip:${ip}`;
}

function routeLimit(t: { name: string }, keyPrefix: string, limit: number, ttl: number, blockDuration: number): RouteLimit {
  const suffix = t.name === 'default' ? '' : `-${t.name}`.toLowerCase();
  return {
    name: t.name,
    limit,
    ttl,
    blockDuration,
    keyPrefix,
    headers: { limit: `x-ratelimit-limit${suffix}`, remaining: `x-ratelimit-remaining${suffix}`, reset: `x-ratelimit-reset${suffix}`, retryAfter: `retry-after${suffix}` },
  };
}

/** The rate-limit headers of one counted request; 429 past the limit. */
function answerLimit(limit: RouteLimit, hit: ThrottlerStorageRecord, reply: Reply): void {
  if (hit.isBlocked) {
    reply.header(limit.headers.retryAfter, hit.timeToBlockExpire);
    throw new ThrottlerException(RATE_LIMITED_MESSAGE);
  }
  reply.header(limit.headers.limit, limit.limit);
  reply.header(limit.headers.remaining, Math.max(0, limit.limit - hit.totalHits));
  reply.header(limit.headers.reset, hit.timeToExpire);
}

/** Rate-limit settings are plain numbers here (no per-request functions): read once per route. */
function numberOption(value: unknown, option: string): number {
  if (typeof value !== 'number' || Number.isNaN(value)) throw new Error(`rate limit "${option}" must be a number`);
  return value;
}

/** A field of a parsed JSON body, undefined when the body is not an object. */
function bodyField(body: unknown, field: string): unknown {
  return typeof body === 'object' && body !== null && !Array.isArray(body) && Object.hasOwn(body, field) ? (body as Record<string, unknown>)[field] : undefined;
}

/** Who the caller claims to be (never trusted, only recorded): the API key id, or anonymous. */
function claimedActor(req: Req): { id: string } {
  const key = req.headers['x-api-key'];
  const m = typeof key === 'string' ? /^cvk_([A-Za-z0-9-]{1,64})_/.exec(key) : null;
  return { id: m ? `claimed-api-key:${m[1]}` : req.headers.authorization ? 'claimed-bearer' : 'anonymous' };
}
