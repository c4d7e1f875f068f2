import type { FastifyInstance, FastifyRequest } from 'fastify';

/**
 * Calls `end` once per request: when its answer was sent, with its status and the time Fastify measured (ms); or
 * when the client left first, with status 0 and no time — Fastify may still finish such a request later, which is
 * not reported again. The request log and the request metrics both count requests this way.
 */
export function onRequestEnd(fastify: FastifyInstance, end: (req: FastifyRequest, statusCode: number, elapsedMs: number | undefined) => void): void {
  const aborted = new WeakSet<FastifyRequest>();
  fastify.addHook('onResponse', (req, reply, done) => {
    if (!aborted.has(req)) end(req, reply.statusCode, reply.elapsedTime);
    done();
  });
  fastify.addHook('onRequestAbort', (req, done) => {
    aborted.add(req);
    end(req, 0, undefined);
    done();
  });
}
