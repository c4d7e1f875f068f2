/**
 * What an injected fault does to a vault request: its delays (ended by stop()), a reset socket, a status answer or an
 * empty list page. Kept apart from emulator.ts, whose request path stays a list of steps, with the only state these
 * need (the active faults and the stop signal); which fault applies to a request is FaultInjector's (faults.ts).
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { errors } from './errors';
import { FaultDecision, FaultInjector, FaultSpec, validateFaultSpec } from './faults';
import { sendError } from './http/io';
import { StatsCollector } from './stats';

export class RequestFaults {
  private readonly injector = new FaultInjector();
  /** Aborted by stop(): ends the injected delays of requests in flight (see `delay`). */
  private readonly stopped = new AbortController();

  constructor(private readonly stats: StatsCollector) {}

  add(spec: FaultSpec): void {
    this.injector.add(validateFaultSpec(spec));
  }

  clear(): void {
    this.injector.clear();
  }

  get active(): number {
    return this.injector.active;
  }

  /** Ends the delays in flight; their requests are not answered (stop() destroys their sockets). */
  stop(): void {
    this.stopped.abort();
  }

  /**
   * Decides the faults of a request and applies what comes before its operation: the request's delay, then a reset
   * or a status answer. The decision when the operation is to run, undefined when the request is done with.
   */
  async beforeOperation(operation: string, name: string | undefined, req: IncomingMessage, res: ServerResponse): Promise<FaultDecision | undefined> {
    const fault = this.injector.decide(operation, name);
    if (fault.latencyMs > 0 && !(await this.delay(fault.latencyMs))) return undefined;
    if (fault.kind === 'reset') {
      this.stats.record(operation, 'reset');
      req.socket.destroy();
      return undefined;
    }
    if (fault.kind === 'status') {
      const retryAfter = fault.retryAfterSeconds === null ? undefined : (fault.retryAfterSeconds ?? 1);
      const e = fault.status === 429 ? errors.throttled(retryAfter) : fault.status === 503 ? errors.unavailable(retryAfter) : errors.internal();
      this.stats.record(operation, e.status);
      sendError(req, res, e);
      return undefined;
    }
    return fault;
  }

  /**
   * An injected delay; false once stop() ended it (its socket is destroyed: nothing to answer). A delay that went on
   * kept a timer of up to its length after stop(), holding the process (a jest worker) open, and then woke to handle
   * a request on a stopped vault.
   */
  async delay(ms: number): Promise<boolean> {
    try {
      await sleep(ms, undefined, { signal: this.stopped.signal });
      return true;
    } catch {
      return false;
    }
  }
}

/** An emptyPage fault's answer: what Azure sometimes answers a list request, no items and a nextLink to the same place. */
export function emptyPage(origin: string, url: URL): { status: number; body: { value: never[]; nextLink: string } } {
  return { status: 200, body: { value: [], nextLink: `${origin}${url.pathname}${url.search}` } };
}
