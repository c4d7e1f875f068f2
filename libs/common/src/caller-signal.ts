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
  return new CallerContext(context, response);
}

/**
 * A class, not an object literal with a getter: V8 builds such a literal through the runtime (about 1 µs) into a
 * dictionary-mode object, and every function the context then goes through reads it slowly — measured at 10–30%
 * of a warm value read's CPU. Here the getter sits on the prototype and the instance keeps fast properties.
 * The response is a private field: never copied by a spread, never serialised.
 */
class CallerContext implements OperationContext {
  readonly tenantId: string;
  readonly actor: OperationContext['actor'];
  readonly correlationId: string | undefined;
  readonly #response: CallerResponse | undefined;
  #signal: AbortSignal | undefined;

  constructor(context: Omit<OperationContext, 'signal'>, response: CallerResponse | undefined) {
    this.tenantId = context.tenantId;
    this.actor = context.actor;
    this.correlationId = context.correlationId;
    this.#response = response;
  }

  get signal(): AbortSignal | undefined {
    return (this.#signal ??= this.#response ? callerSignal(this.#response) : undefined);
  }
}

/** Fails to compile when OperationContext gains a member CallerContext does not carry. */
const EVERY_MEMBER_CARRIED: Exclude<keyof OperationContext, 'tenantId' | 'actor' | 'correlationId' | 'signal'> extends never ? true : never = true;
void EVERY_MEMBER_CARRIED;

const NEVER_ABORTED = new AbortController().signal;
