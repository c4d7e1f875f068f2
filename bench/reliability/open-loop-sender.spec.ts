import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runOpenLoop } from './open-loop-sender';

/**
 * The soak's load generator keeps its schedule when the test runner's own event loop stalls (CI once
 * failed the soak on a 2.6 s lag that was the jest worker's pause, not the host's).
 */
describe('open-loop sender', () => {
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
});
