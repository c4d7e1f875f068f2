import { ForbiddenException, HttpException, Logger, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host';
import { SkipThrottle, Throttle, ThrottlerException, type ThrottlerStorage } from '@nestjs/throttler';
import type { AuditService } from '@app/audit';
import { loadAppConfig } from '../config/app.config';
import { DeferredBody, RawBodyRoute } from '../http/request-body';
import { Body, Query } from '../http/validated-params';
import { generateApiKey } from './api-keys';
import { Public, RequireScopes } from './auth.decorators';
import { AuthGuard, UNAUTHENTICATED_TENANT } from './auth.guard';
import { AuthService } from './auth.service';
import { FixedWindowThrottlerStorage } from './fixed-window-throttler.storage';
import { Scope } from './scopes';

class Routes {
  @RequireScopes(Scope.CREDENTIALS_READ)
  read(@Body() _body: unknown) {}
  @RequireScopes(Scope.CREDENTIALS_READ)
  bodiless() {}
  @RequireScopes(Scope.CREDENTIALS_READ)
  limited(@Query('limit') _limit?: string) {}
  @RequireScopes(Scope.CREDENTIALS_WRITE)
  write() {}
  @Throttle({ default: { limit: 1, ttl: 60_000 } })
  strict() {}
  @RawBodyRoute()
  raw() {}
}

@Public()
@SkipThrottle()
class Probes {
  live() {}
}

@Public()
class PublicRoutes {
  callback() {}
}

/** The host's one global guard: authentication, scopes, the rate limit and body parsing, in that order. */
describe('AuthGuard', () => {
  const reader = generateApiKey('reader', 'acme', [Scope.CREDENTIALS_READ]);
  let storage: FixedWindowThrottlerStorage;
  let audited: Array<{ action: string; context: { tenantId: string } }>;
  let guard: AuthGuard;

  beforeEach(() => {
    storage = new FixedWindowThrottlerStorage();
    audited = [];
    const audit = { recordRead: async (e: { action: string; context: { tenantId: string } }) => void audited.push(e) } as unknown as AuditService;
    const auth = new AuthService(loadAppConfig({ AUTH_API_KEYS: JSON.stringify([reader.entry]) }));
    guard = new AuthGuard(auth, new Reflector(), audit, { throttlers: [{ ttl: 60_000, limit: 3 }] }, storage);
  });
  afterEach(() => storage.onModuleDestroy());

  function call(controller: new () => object, handler: string, headers: Record<string, string> = {}, body?: unknown) {
    const req: Record<string, unknown> = { headers, ip: '10.0.0.1', id: 'r1', method: 'GET', url: '/x', body };
    const replyHeaders: Record<string, number> = {};
    const reply = { header: (n: string, v: number) => void (replyHeaders[n] = v) };
    const handlerFn = (controller.prototype as Record<string, () => void>)[handler];
    const run = () => guard.canActivate(new ExecutionContextHost([req, reply], controller, handlerFn));
    return { req, replyHeaders, run };
  }
  const asReader = { 'x-api-key': reader.key };

  it('refuses a body or a query parameter the route does not declare, without naming it', async () => {
    await expect(call(Routes, 'bodiless', asReader, new DeferredBody('application/json', Buffer.from('{"a":1}'))).run()).rejects.toThrow('this route takes no request body');
    // An empty object (what many clients send with every POST) holds nothing to ignore.
    await expect(call(Routes, 'bodiless', asReader, new DeferredBody('application/json', Buffer.from(' { } '))).run()).resolves.toBe(true);
    const c = call(Routes, 'limited', asReader);
    c.req.query = { limit: '1', secretish: 'x' };
    await expect(c.run()).rejects.toThrow('this route takes only the query parameters limit');
    c.req.query = { limit: '1' };
    await expect(c.run()).resolves.toBe(true);
  });

  it('authenticates, counts the client and parses the body, saying how many requests are left', async () => {
    const c = call(Routes, 'read', asReader, new DeferredBody('application/json', Buffer.from('{"a":1}')));
    await expect(c.run()).resolves.toBe(true);
    expect(c.req.principal).toMatchObject({ id: 'api-key:reader', tenantId: 'acme' });
    expect(c.req.body).toEqual({ a: 1 });
    expect(c.replyHeaders).toEqual({ 'x-ratelimit-limit': 3, 'x-ratelimit-remaining': 2, 'x-ratelimit-reset': 60 });
  });

  it('refuses an unknown caller with 401, audited, without parsing its body; counted per IP, on any route', async () => {
    const body = new DeferredBody('application/json', Buffer.from('{not json'));
    const c = call(Routes, 'read', { 'x-api-key': 'cvk_reader_wrongwrongwrongwrongwrong' }, body);
    await expect(c.run()).rejects.toBeInstanceOf(UnauthorizedException);
    expect(c.req.body).toBe(body);
    expect(audited).toEqual([expect.objectContaining({ action: 'auth_failure', context: expect.objectContaining({ tenantId: UNAUTHENTICATED_TENANT }) })]);
    // One counter per IP across routes: past the limit (3) a guess is a 429, and is not audited.
    await expect(call(Routes, 'strict', { 'x-api-key': 'cvk_reader_guessguessguessguessguess' }).run()).rejects.toBeInstanceOf(UnauthorizedException);
    await expect(call(Routes, 'read', {}).run()).rejects.toBeInstanceOf(UnauthorizedException);
    const past = call(Routes, 'read', { 'x-api-key': 'cvk_reader_onemoreonemoreonemoreonemore' });
    await expect(past.run()).rejects.toBeInstanceOf(ThrottlerException);
    expect(past.replyHeaders['retry-after']).toBeGreaterThan(0);
    expect(audited).toHaveLength(3);
    // The caller's valid key is its own client.
    await expect(call(Routes, 'read', asReader).run()).resolves.toBe(true);
  });

  it('still refuses when the audit write fails, and logs that failure by error class and code only', async () => {
    const failing = { recordRead: async () => Promise.reject(Object.assign(new Error('audit insert failed: MARKER-5b3a'), { code: 'ECONNRESET' })) } as unknown as AuditService;
    const g = new AuthGuard(new AuthService(loadAppConfig({ AUTH_API_KEYS: JSON.stringify([reader.entry]) })), new Reflector(), failing, { throttlers: [{ ttl: 60_000, limit: 3 }] }, storage);
    const warned = jest.spyOn((g as unknown as { logger: Logger }).logger, 'warn').mockImplementation(() => undefined);
    const c = call(Routes, 'write', asReader);
    await expect(g.canActivate(new ExecutionContextHost([c.req, { header: () => undefined }], Routes, Routes.prototype.write))).rejects.toBeInstanceOf(ForbiddenException);
    expect(warned).toHaveBeenCalledTimes(1);
    expect(String(warned.mock.calls[0][0])).toContain('Error(ECONNRESET)');
    expect(String(warned.mock.calls[0][0])).not.toContain('MARKER-5b3a');
  });

  it('refuses a missing scope with 403, audited', async () => {
    await expect(call(Routes, 'write', asReader).run()).rejects.toBeInstanceOf(ForbiddenException);
    expect(audited).toEqual([expect.objectContaining({ action: 'access_denied', context: expect.objectContaining({ tenantId: 'acme' }) })]);
  });

  it('answers 429 with Retry-After past the limit, counting each route separately, and never parses a refused body', async () => {
    for (let i = 0; i < 3; i++) await call(Routes, 'read', asReader).run();
    const refused = call(Routes, 'read', asReader, new DeferredBody('application/json', Buffer.from('{"a":1}')));
    const error = await refused.run().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ThrottlerException);
    expect((error as HttpException).getStatus()).toBe(429);
    expect(refused.replyHeaders['retry-after']).toBe(60);
    expect(refused.req.body).toBeInstanceOf(DeferredBody);
    await expect(call(Routes, 'raw', asReader).run()).resolves.toBe(true);
  });

  it("honours a route's @Throttle limit", async () => {
    await call(Routes, 'strict', asReader).run();
    await expect(call(Routes, 'strict', asReader).run()).rejects.toBeInstanceOf(ThrottlerException);
  });

  it('lets public routes through without credentials; @SkipThrottle ones are not counted, others count per IP', async () => {
    for (let i = 0; i < 5; i++) await expect(call(Probes, 'live').run()).resolves.toBe(true);
    expect(storage.size).toBe(0);
    const c = call(PublicRoutes, 'callback');
    await c.run();
    expect(c.req.principal).toBeUndefined();
    expect(c.replyHeaders['x-ratelimit-remaining']).toBe(2);
  });

  it('counts through any other ThrottlerStorage (e.g. Redis) the same way, with a named throttler in its header names', async () => {
    const hits = new Map<string, number>();
    const shared: ThrottlerStorage = {
      increment: async (key, _ttl, limit, _block, name) => {
        const n = (hits.get(`${name}:${key}`) ?? 0) + 1;
        hits.set(`${name}:${key}`, n);
        return { totalHits: n, timeToExpire: 10, isBlocked: n > limit, timeToBlockExpire: n > limit ? 10 : 0 };
      },
    };
    const audit = { recordRead: async () => undefined } as unknown as AuditService;
    const auth = new AuthService(loadAppConfig({ AUTH_API_KEYS: JSON.stringify([reader.entry]) }));
    const g = new AuthGuard(auth, new Reflector(), audit, { throttlers: [{ name: 'Burst', ttl: 10_000, limit: 1 }] }, shared);
    const run = (c: ReturnType<typeof call>) => g.canActivate(new ExecutionContextHost([c.req, { header: (n: string, v: number) => void (c.replyHeaders[n] = v) }], Routes, Routes.prototype.read));
    const first = call(Routes, 'read', asReader);
    await expect(run(first)).resolves.toBe(true);
    expect(first.replyHeaders).toEqual({ 'x-ratelimit-limit-burst': 1, 'x-ratelimit-remaining-burst': 0, 'x-ratelimit-reset-burst': 10 });
    const second = call(Routes, 'read', asReader);
    await expect(run(second)).rejects.toBeInstanceOf(ThrottlerException);
    expect(second.replyHeaders['retry-after-burst']).toBe(10);
    expect([...hits.keys()]).toEqual(['Burst:Routes-read-Burst-api-key:reader']);
  });

  it('hands a raw-body route its bytes unparsed', async () => {
    const c = call(Routes, 'raw', asReader, new DeferredBody('text/plain', Buffer.from('signed bytes')));
    await c.run();
    expect(c.req.body).toEqual(Buffer.from('signed bytes'));
  });
});
