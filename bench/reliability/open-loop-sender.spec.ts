import childProcess from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { runOpenLoop, senderJs } from './open-loop-sender';

/**
 * The soak's load generator keeps its schedule when the test runner's own event loop stalls (CI once
 * failed the soak on a 2.6 s lag that was the jest worker's pause, not the host's).
 */
describe('open-loop sender', () => {
  // A run compiles the sender with swc first (up to seconds on a busy machine), then sends for seconds: 5 s is too tight.
  jest.setTimeout(30_000);
  let server: Server;
  let baseUrl: string;
  const seen: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers['x-api-key']}`);
      req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('sends every request on schedule from its own process while this one is blocked for 2 s', async () => {
    let blocked = 0;
    const r = await runOpenLoop({ baseUrl, apiKey: 'k1', ids: ['a', 'b', 'c'], ratePerSec: 50, durationMs: 4_000 }, () => {
      setTimeout(() => {
        const t0 = Date.now();
        while (Date.now() - t0 < 2_000); // this process's event loop stalls, as a jest worker's may
        blocked = Date.now() - t0;
      }, 1_000);
    });
    expect(blocked).toBeGreaterThanOrEqual(2_000);
    expect(r.scheduled).toBe(200);
    expect(r.samples).toHaveLength(200);
    expect(r.errors).toBe(0);
    expect(r.maxLagMs).toBeLessThan(1_000);
    // The load ends with its last send (due at 3.98 s), before its answers drained.
    expect(r.sentMs).toBeGreaterThanOrEqual(3_980);
    expect(r.sentMs).toBeLessThanOrEqual(r.runMs);
    // The mix: value reads, rotations, metadata reads and list pages, with the caller's key.
    expect(seen.filter((s) => s.endsWith(' k1'))).toHaveLength(200);
    expect(new Set(seen.map((s) => s.replace(/\/v1\/credentials\/[abc]/, '/v1/credentials/:id').split(' ').slice(0, 2).join(' ')))).toEqual(
      new Set(['GET /v1/credentials/:id/value', 'POST /v1/credentials/:id/rotate', 'GET /v1/credentials/:id', 'GET /v1/credentials?limit=20']),
    );
  });

  it('counts a request that fails as an error, with its reason', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((r) => closed.close(() => r()));
    const r = await runOpenLoop({ baseUrl: `http://127.0.0.1:${port}`, apiKey: 'k', ids: ['a'], ratePerSec: 10, durationMs: 200 }, () => undefined);
    expect(r).toMatchObject({ scheduled: 2, errors: 2 });
    expect(r.examples[0]).toMatch(/fetch failed \(ECONNREFUSED\)/);
  });

  /** Requests the server sees in the next `ms`: none once the load has stopped. */
  const seenDuring = async (ms: number) => {
    const before = seen.length;
    await new Promise((r) => setTimeout(r, ms));
    return seen.length - before;
  };

  it('stops the load when the caller fails mid-run: no child left sending', async () => {
    const run = runOpenLoop({ baseUrl, apiKey: 'k2', ids: ['a'], ratePerSec: 50, durationMs: 10_000 }, () => {
      throw new Error('the harness failed as the run began');
    });
    await expect(run).rejects.toThrow('the harness failed as the run began');
    await new Promise((r) => setTimeout(r, 300)); // requests already on the wire land
    expect(await seenDuring(1_000)).toBe(0);
  });

  it('stops the load when the process running it dies mid-run: no orphan child', async () => {
    const { file, remove } = await senderJs();
    try {
      const spec = { baseUrl, apiKey: 'k3', ids: ['a'], ratePerSec: 50, durationMs: 10_000 };
      const parent = childProcess.spawn(process.execPath, ['-e', `require(${JSON.stringify(file)}).runOpenLoop(${JSON.stringify(spec)}, () => console.log('started'))`], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise((r) => parent.stdout.once('data', r));
      expect(await seenDuring(500)).toBeGreaterThan(0);
      parent.kill('SIGKILL');
      await new Promise((r) => parent.once('exit', r));
      await new Promise((r) => setTimeout(r, 300));
      expect(await seenDuring(1_000)).toBe(0);
    } finally {
      remove();
    }
  });

  it("gives the run's origin as the child began it, though this process was blocked when its message came", async () => {
    const fork = childProcess.fork;
    let blockedUntil = 0;
    jest.spyOn(childProcess, 'fork').mockImplementation((...args: Parameters<typeof fork>) => {
      const child = fork(...args);
      // This process stalls from just after the fork until well after the child began its run.
      setImmediate(() => {
        const t = performance.now();
        while (performance.now() - t < 2_000);
        blockedUntil = performance.now();
      });
      return child;
    });
    let origin = NaN;
    let calledAt = NaN;
    try {
      await runOpenLoop({ baseUrl, apiKey: 'k4', ids: ['a'], ratePerSec: 20, durationMs: 1_000 }, (t0) => {
        origin = t0;
        calledAt = performance.now();
      });
    } finally {
      jest.restoreAllMocks();
    }
    expect(calledAt).toBeGreaterThanOrEqual(blockedUntil);
    // The child started within the stall (its boot takes well under 1.5 s), not when its message was read.
    expect(blockedUntil - origin).toBeGreaterThan(500);
    expect(origin).toBeLessThanOrEqual(calledAt);
  });
});
