import type { ServerResponse } from 'node:http';

/**
 * An AbortSignal that aborts when the HTTP client leaves before its answer is written (connection closed,
 * request aborted, client timeout), for `OperationContext.signal`. Read off the response's 'close': Node sets
 * `req.aborted` (Fastify's onRequestAbort) only while the body is still being received, so a client that sent
 * its whole body and then left would go unseen. A closed response that finished its answer is no abort.
 */
export function callerSignal(res: ServerResponse): AbortSignal {
  if (res.writableFinished) return NEVER_ABORTED;
  const controller = new AbortController();
  if (res.destroyed || res.socket?.destroyed) {
    controller.abort();
    return controller.signal;
  }
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

const NEVER_ABORTED = new AbortController().signal;
