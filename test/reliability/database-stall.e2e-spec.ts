import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { POSTGRES_URL } from '@app/testing';
import { startTestHost, type TestHost } from '../support/host';

/**
 * PostgreSQL stalls (it accepts connections and never answers: a hung server, a half-open network),
 * then answers again. The replica must become ready again by itself: each stuck connection attempt
 * gives up after DATABASE_CONNECT_TIMEOUT_MS and frees its pool slot. (Before, the pool filled with
 * attempts that never ended: /health/ready answered 503 for good while /health/live stayed 200, so
 * no orchestrator ever restarted the replica.)
 */
describe('the host when PostgreSQL stalls and comes back', () => {
  let host: TestHost;
  let proxy: Server;
  let mode: 'pass' | 'stall' = 'pass';
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    const target = new URL(POSTGRES_URL);
    proxy = createServer((client) => {
      sockets.add(client);
      client.on('close', () => sockets.delete(client));
      client.on('error', () => undefined);
      if (mode === 'stall') return; // accepted, never answered
      const server = connect(Number(target.port || 5432), target.hostname);
      sockets.add(server);
      server.on('close', () => sockets.delete(server));
      server.on('error', () => client.destroy());
      client.on('error', () => server.destroy());
      client.pipe(server).pipe(client);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const url = new URL(POSTGRES_URL);
    url.port = String((proxy.address() as AddressInfo).port);
    url.hostname = '127.0.0.1';
    host = await startTestHost('postgres', {
      DATABASE_URL: url.toString(),
      DATABASE_POOL_SIZE: '4',
      DATABASE_CONNECT_TIMEOUT_MS: '1000',
      ROTATION_EXPIRY_MONITOR_ENABLED: 'false',
      ROTATION_CHECK_ENABLED: 'false',
      OAUTH_PROACTIVE_ENABLED: 'false',
      AUDIT_ANCHOR_ENABLED: 'false',
      AUDIT_RETENTION_ENABLED: 'false',
    });
  }, 60_000);

  afterAll(async () => {
    mode = 'pass';
    for (const s of sockets) s.destroy();
    await host?.close();
    await new Promise((resolve) => proxy?.close(resolve));
  });

  const ready = async () => (await fetch(`${host.baseUrl}/health/ready`)).status;

  it('answers 503 while it stalls, and is ready again within seconds of PostgreSQL answering', async () => {
    expect(await ready()).toBe(200);
    // The stall: every open connection is cut (as a restart would) and new ones hang.
    mode = 'stall';
    for (const s of sockets) s.destroy();
    const during = [];
    for (let i = 0; i < 8; i++) during.push(await ready());
    expect(during.every((s) => s === 503)).toBe(true);
    expect((await fetch(`${host.baseUrl}/health/live`)).status).toBe(200);

    mode = 'pass';
    const deadline = Date.now() + 15_000;
    let status = await ready();
    while (status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      status = await ready();
    }
    expect(status).toBe(200);
  }, 60_000);
});
