import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { spreadRequests } from './autocannon';
import { parseCredentials, readPaths, roundRobin } from './spread-reads';
import type { ServerReady } from './server-process';

describe('parseCredentials (--credentials)', () => {
  it('is 1 when absent and takes a whole count ≥ 1', () => {
    expect(parseCredentials(undefined)).toBe(1);
    expect(parseCredentials('1')).toBe(1);
    expect(parseCredentials('1000')).toBe(1000);
  });

  it.each(['0', '-3', '1.5', '1e3', 'many', '', ' '])('refuses %j with the option named', (raw) => {
    expect(() => parseCredentials(raw)).toThrow(/--credentials takes a whole count ≥ 1/);
  });
});

describe('readPaths', () => {
  const ready: ServerReady = {
    base: 'http://127.0.0.1:1',
    headers: {},
    paths: { value: '/v1/credentials/aaa-1/value', metadata: '/v1/credentials/aaa-1', live: '/health/live' },
  };

  it("puts the host's own path first, then the seeded credentials' in order, in the same shape", () => {
    expect(readPaths(ready, 'value', ['bbb-2', 'ccc-3'])).toEqual(['/v1/credentials/aaa-1/value', '/v1/credentials/bbb-2/value', '/v1/credentials/ccc-3/value']);
    expect(readPaths(ready, 'metadata', ['bbb-2'])).toEqual(['/v1/credentials/aaa-1', '/v1/credentials/bbb-2']);
    expect(readPaths(ready, 'value', [])).toEqual(['/v1/credentials/aaa-1/value']);
  });

  it('refuses a server without credential paths (the bare route)', () => {
    expect(() => readPaths({ base: 'http://x', headers: {}, paths: { bare: '/bare', live: '/health/live' } }, 'value', ['b'])).toThrow(/no credential value path/);
  });
});

describe('roundRobin', () => {
  it('returns each path in turn and wraps round', () => {
    const next = roundRobin(['a', 'b', 'c']);
    expect(Array.from({ length: 7 }, next)).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a']);
    const one = roundRobin(['only']);
    expect([one(), one()]).toEqual(['only', 'only']);
    expect(() => roundRobin([])).toThrow();
  });
});

// The request list the load generator gets, run by autocannon itself against a local server: every path served,
// evenly, by one cursor shared by the connections.
describe('spreadRequests under autocannon', () => {
  let server: Server;
  let base: string;
  const hits = new Map<string, number>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      hits.set(req.url!, (hits.get(req.url!) ?? 0) + 1);
      res.end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => hits.clear());

  // eslint-disable-next-line @typescript-eslint/no-require-imports -- autocannon ships no types
  const run = require('autocannon') as (opts: object) => Promise<{ requests: { total: number }; non2xx: number }>;

  it('spreads the requests of all connections over every path, round-robin', async () => {
    const paths = Array.from({ length: 50 }, (_, i) => `/v1/credentials/id-${i}/value`);
    const r = await run({ url: `${base}/v1/credentials/id-0/value`, connections: 8, amount: 500, requests: spreadRequests(paths) });
    expect(r.requests.total).toBe(500);
    expect([...hits.keys()].sort()).toEqual([...paths].sort());
    // 500 requests over 50 paths from one cursor: each path 10 times (± the requests built but not sent at the end).
    for (const p of paths) expect(Math.abs(hits.get(p)! - 10)).toBeLessThanOrEqual(1);
    // A real load generator: well under a second alone, past the unit project's 5 s beside CI's e2e workers.
  }, 30_000);
});
