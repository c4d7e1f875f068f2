import type { FastifyInstance } from 'fastify';
import FindMyWay from 'find-my-way';

/** The order an Allow header names methods in. */
const METHOD_ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const rank = (method: string): number => (METHOD_ORDER.includes(method) ? METHOD_ORDER.indexOf(method) : METHOD_ORDER.length);
const noop = (): void => undefined;

/**
 * The host's routes by method, to tell a wrong method on a known path (405, whose Allow header names the methods the
 * path has) from a path no route serves (404). Fastify's router only says "nothing for this method": this is a second
 * router of the same kind (find-my-way, Fastify's own) with Fastify's matching options, filled from the `onRoute` hook,
 * so it matches a path exactly as Fastify would. It is asked only for a request Fastify routed nowhere, never on a
 * routed one. Create it before the routes are registered (before `app.init()`/`listen`).
 *
 * `headToo`: GET routes that also answer HEAD (the same handler; Node sends no body). The host turns Fastify's HEAD
 * twin of every GET off (`exposeHeadRoutes: false`: on a value route it read and audited a value it never
 * delivered); probes and clients that check with HEAD get the routes named here.
 */
export class RouteTable {
  private readonly router: FindMyWay.Instance<FindMyWay.HTTPVersion.V1>;
  /** Every method some route has, in Allow order. */
  private methods: FindMyWay.HTTPMethod[] = [];

  constructor(fastify: FastifyInstance, { headToo = [] }: { headToo?: readonly string[] } = {}) {
    const c = { ...fastify.initialConfig, ...fastify.initialConfig.routerOptions };
    this.router = FindMyWay({
      caseSensitive: c.caseSensitive,
      ignoreTrailingSlash: c.ignoreTrailingSlash,
      ignoreDuplicateSlashes: c.ignoreDuplicateSlashes,
      maxParamLength: c.maxParamLength,
      allowUnsafeRegex: c.allowUnsafeRegex,
      useSemicolonDelimiter: c.useSemicolonDelimiter,
    } as FindMyWay.Config<FindMyWay.HTTPVersion.V1>);
    fastify.addHook('onRoute', (route) => {
      if (route.method === 'GET' && headToo.includes(route.url)) route.method = ['GET', 'HEAD'];
      for (const method of ([] as string[]).concat(route.method) as FindMyWay.HTTPMethod[]) {
        if (!this.router.hasRoute(method, route.url)) this.router.on(method, route.url, noop);
        if (!this.methods.includes(method)) this.methods = [...this.methods, method].sort((a, b) => rank(a) - rank(b));
      }
    });
    // A table made after the routes were registered heard of none of them: fail the start rather than answer HEAD 405.
    fastify.addHook('onReady', (done) => {
      const missed = headToo.find((url) => fastify.hasRoute({ method: 'GET', url }) && !fastify.hasRoute({ method: 'HEAD', url }));
      done(missed === undefined ? undefined : new Error(`RouteTable was created after the route GET ${missed} was registered`));
    });
  }

  /** The methods routes have for `url` (a request's, query included), comma-separated in Allow order; '' when no route has the path. */
  allowedMethods(url: string): string {
    let allow = '';
    for (const method of this.methods) if (this.router.find(method, url) !== null) allow = allow ? `${allow}, ${method}` : method;
    return allow;
  }
}
