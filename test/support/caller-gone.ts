import { Agent, request } from 'node:http';

/**
 * Requests of callers who may leave: each on a connection of its own, closed when it ends or is aborted (fetch's pool
 * keeps connections it opened for aborted requests, which the host then waits on for `headersTimeout` when closing).
 */
export class LeavingCallers {
  private readonly agent = new Agent({ keepAlive: false });

  constructor(
    private readonly baseUrl: string,
    private readonly headers: Record<string, string>,
  ) {}

  /** The answer's status, or the error's name (`AbortError` once `signal` aborted). */
  send(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<number | string> {
    return new Promise((resolve) => {
      const headers = { ...this.headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
      const req = request(`${this.baseUrl}${path}`, { method, agent: this.agent, signal, headers }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', (e) => resolve(e.name));
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The sum of the /metrics samples whose line matches `line`. */
export async function metricSum(baseUrl: string, line: RegExp): Promise<number> {
  return (await (await fetch(`${baseUrl}/metrics`)).text())
    .split('\n')
    .filter((l) => line.test(l))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}
