/** What names a path that matched no route, where a route pattern is recorded (metric label, audit resource). */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * The route's pattern as Fastify matched it (`/v1/credentials/:id/value`), else `unmatched`: nothing a
 * client chose (an id, or a token pasted into the path) is carried, only which route it asked for.
 */
export function routePattern(req: { routeOptions?: { url?: string } }): string {
  return req.routeOptions?.url ?? UNMATCHED_ROUTE;
}
