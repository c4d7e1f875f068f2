import type { ServerResponse } from 'node:http';
import type { OperationContext } from './context';

/** An HTTP answer in the making: Node's own (Express's `res` is one) or a wrapper of it (Fastify's reply, `reply.raw`). */
export type CallerResponse = ServerResponse | { readonly raw: ServerResponse };

/**
 * An AbortSignal that aborts when the HTTP client leaves before its answer is written (connection closed,
 * request aborted, client timeout), for `OperationContext.signal`. Read off the response's 'close': Node sets
 * `req.aborted` (Fastify's onRequestAbort) only while the body is still being received, so a client that sent
 * its whole body and then left would go unseen. A closed response that finished its answer is no abort.
 */
export function callerSignal(response: CallerResponse): AbortSignal {
  const res = 'raw' in response ? response.raw : response;
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

/**
 * `context` with a `signal` that aborts when the HTTP client leaves (`callerSignal`), so the vault calls not yet
 * sent for a caller who is gone are dropped. The signal is made when first read (a vault call about to be sent),
 * not per request: a cached read never pays for it. No response (not an HTTP call): no signal.
 */
export function withCallerSignal(context: Omit<OperationContext, 'signal'>, response: CallerResponse | undefined): OperationContext {
  let signal: AbortSignal | undefined;
  return {
    ...context,
    get signal() {
      return (signal ??= response ? callerSignal(response) : undefined);
    },
  };
}

const NEVER_ABORTED = new AbortController().signal;
