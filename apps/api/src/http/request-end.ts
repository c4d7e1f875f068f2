import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';

/** Requests answered on their socket before their body had arrived (a 408: client-errors.ts' unparsableRequest), by status. */
const answeredEarly = new WeakMap<IncomingMessage, number>();

/**
 * `raw` was answered `statusCode` on its socket while its body was still arriving, and its connection ends: Fastify then
 * sees the request aborted, but the client had an answer, and the request's line and count say so (same request id).
 */
export function answeredBeforeArrival(raw: IncomingMessage, statusCode: number): void {
  answeredEarly.set(raw, statusCode);
}

/**
 * Calls `end` once per request: when its answer was sent, with its status and the time Fastify measured (ms); or
 * when the client left first, with status 0 and no time — Fastify may still finish such a request later, which is
 * not reported again; or, when its connection was answered before the request had arrived (answeredBeforeArrival), with
 * that status and no time. The request log and the request metrics both count requests this way.
 */
export function onRequestEnd(fastify: FastifyInstance, end: (req: FastifyRequest, statusCode: number, elapsedMs: number | undefined) => void): void {
  const aborted = new WeakSet<FastifyRequest>();
  fastify.addHook('onResponse', (req, reply, done) => {
    if (!aborted.has(req)) end(req, reply.statusCode, reply.elapsedTime);
    done();
  });
  fastify.addHook('onRequestAbort', (req, done) => {
    aborted.add(req);
    end(req, answeredEarly.get(req.raw) ?? 0, undefined);
    done();
  });
}
