import { ChildProcess, spawn } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, Agent } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { freePort, GrpcKeysClient } from './support/grpc-keys-client';
import { embeddedBackends } from './support/backends';
import { ROTATION_JOBS_OFF } from './support/host';
import { writeRequireHook } from './support/swc-require-hook';

const ROOT = join(__dirname, '..');
const MAIN = join(ROOT, 'apps', 'api', 'src', 'main.ts');

/** One GET on a keep-alive agent: the status, or the socket error's code (ECONNRESET...). */
function get(agent: Agent, url: string): Promise<{ status?: number; connection?: string; error?: string }> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, connection: String(res.headers.connection ?? '') }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    req.end();
  });
}

/** A raw connection to the host: what it has received, and whether the host has closed it. */
function openRaw(base: string): { socket: Socket; received: () => string; closedAt: () => number | undefined } {
  const url = new URL(base);
  const socket = connect(Number(url.port), url.hostname.replace(/^\[(.*)\]$/, '$1'));
  let received = '';
  let closedAt: number | undefined;
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (received += d));
  socket.on('end', () => (closedAt ??= Date.now()));
  socket.on('close', () => (closedAt ??= Date.now()));
  socket.on('error', () => undefined);
  return { socket, received: () => received, closedAt: () => closedAt };
}

/** Polls `check` every 20 ms until it is true or `ms` have passed. */
async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return check();
}

/** How a test runs `node <args>`: the command and its arguments. */
type Launcher = (nodeArgs: string[]) => [string, string[]];

/**
 * `node` where `localhost` resolves to ::1 and 127.0.0.1 (as Docker's /etc/hosts has it): as is where it does, else
 * (this machine's /etc/hosts has 127.0.0.1 alone) in a mount namespace of its own with such a file bound over
 * /etc/hosts — the machine's file is not touched. Needs `unshare` and root, as the project's machines have.
 */
async function dualLocalhost(dir: string): Promise<Launcher> {
  const families = new Set((await lookup('localhost', { all: true })).map((a) => a.family));
  if (families.has(4) && families.has(6)) return (args) => [process.execPath, args];
  const hosts = join(dir, 'hosts-dual-localhost');
  writeFileSync(hosts, '::1 localhost\n127.0.0.1 localhost\n');
  return (args) => ['unshare', ['--mount', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', hosts, process.execPath, ...args]];
}

/** One GET with an `Expect` the host cannot meet: the status and request id of the answer. */
function unmetExpect(url: string): Promise<{ status?: number; requestId?: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { expect: 'x-unmet' } }, (res) => {
      res.resume();
      resolve({ status: res.statusCode, requestId: res.headers['x-request-id'] as string | undefined });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * The host as `npm start` runs it, sent SIGTERM under keep-alive load: it drains (readiness 503,
 * `Connection: close` on every answer, still serving), then closes and exits 0 — no client sees its
 * connection reset while the load balancer takes the replica out. (Before: the close began at once,
 * and requests sent on open keep-alive connections met ECONNRESET or Fastify's bare 503; the process
 * exited 143.)
 */
describe('the host process: SIGTERM drains then closes (keep-alive clients); its output', () => {
  let dir: string;
  let child: ChildProcess;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cv-drain-'));
  });

  afterAll(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  /** The host as `npm start` runs it (main.ts), quiet jobs, its files under `dir` with `suffix`; `launch` may wrap the node command. */
  const startHost = (suffix: string, env: Record<string, string>, launch: Launcher = (args) => [process.execPath, args]): ChildProcess =>
    spawn(...launch(['--no-warnings', '--require', writeRequireHook(dir), MAIN]), {
      cwd: ROOT,
      env: {
        ...process.env,
        NODE_ENV: 'test',
        LOG_LEVEL: 'error',
        PORT: '0',
        ...embeddedBackends(env, dir, suffix),
        ...ROTATION_JOBS_OFF,
        OAUTH_PROACTIVE_ENABLED: 'false',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });

  /** A host started as `startHost` does, once it listens: its base URL and its exit code to come. */
  const startListening = async (
    suffix: string,
    env: Record<string, string>,
    launch?: Launcher,
  ): Promise<{ host: ChildProcess; exited: Promise<number | null>; base: string; stdout: () => string }> => {
    const host = startHost(suffix, env, launch);
    let stdout = '';
    host.stdout!.on('data', (d) => (stdout += d));
    const exited = new Promise<number | null>((resolve) => host.on('close', (code) => resolve(code)));
    const listening = await waitFor(() => /listening on (http:\/\/[^\s"]+)/.test(stdout), 60_000);
    if (!listening) host.kill('SIGKILL');
    expect(listening).toBe(true);
    return { host, exited, base: /listening on (http:\/\/[^\s"]+)/.exec(stdout)![1].replace('[::1]', '127.0.0.1'), stdout: () => stdout };
  };

  // SIGINT too: Ctrl-C on `npm start`, and process managers that stop with it (PM2). It closed at once, without the drain or its line.
  it.each(['SIGTERM', 'SIGINT'] as const)('on %s keeps answering while it drains, with Connection: close and readiness 503, then exits 0', async (signal) => {
    child = startHost(signal === 'SIGTERM' ? '' : '-sigint', { SHUTDOWN_DRAIN_MS: '1500' });
    let stdout = '';
    child.stdout!.on('data', (d) => (stdout += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    while (!/listening on (http:\/\/[^\s"]+)/.test(stdout) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const base = /listening on (http:\/\/[^\s"]+)/.exec(stdout)![1].replace('[::1]', '127.0.0.1');

    // Eight keep-alive clients in a loop until the host stops listening.
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    const results: Array<{ status?: number; connection?: string; error?: string; at: number }> = [];
    let stop = false;
    const loops = Array.from({ length: 8 }, async () => {
      while (!stop) {
        const r = await get(agent, `${base}/health/live`);
        results.push({ ...r, at: Date.now() });
        if (r.error === 'ECONNREFUSED') return; // no longer listening: the load balancer has stopped routing here long ago
      }
    });
    await new Promise((r) => setTimeout(r, 500));
    const signalled = Date.now();
    child.kill(signal);
    await new Promise((r) => setTimeout(r, 300));
    const ready = await get(new Agent(), `${base}/health/ready`);
    expect(ready.status).toBe(503);
    // A readiness report like any not-ready replica's (what is down: this replica's shutdown), not an error of the host.
    const report = await fetch(`${base}/health/ready`);
    expect(report.status).toBe(503);
    expect(await report.json()).toMatchObject({ status: 'error', error: { shutdown: { status: 'down', message: expect.stringMatching(/shutting down/) } } });
    const code = await exited;
    stop = true;
    await Promise.all(loops);
    agent.destroy();

    expect(code).toBe(0);
    const before = results.filter((r) => r.at < signalled);
    // While draining (1.5 s here), everything is served, each answer closing its connection.
    const draining = results.filter((r) => r.at >= signalled + 100 && r.at <= signalled + 1400);
    expect(before.length).toBeGreaterThan(10);
    expect(draining.length).toBeGreaterThan(10);
    expect(draining.filter((r) => !(r.status === 200 && r.connection === 'close'))).toEqual([]);
    // No reset and no refusal until the drain is over. (These clients ignore readiness and keep sending once
    // the close has begun: behind a load balancer none would; they get a refusal or a reset then, or are served.)
    expect(results.filter((r) => r.error !== undefined && r.at <= signalled + 1400)).toEqual([]);
    expect(results.filter((r) => r.status !== undefined && r.status !== 200 && r.at <= signalled + 1400)).toEqual([]);
    // stdout is JSON lines only, the start and drain lines included although LOG_LEVEL=error.
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; level: number; url?: string; signal?: string; drainMs?: number });
    expect(lines.find((l) => l.msg.startsWith('Credential Vault listening on'))).toMatchObject({ level: 30, url: expect.stringMatching(/^http:/) });
    expect(lines.filter((l) => l.msg.startsWith('Draining before shutdown'))).toEqual([expect.objectContaining({ signal, drainMs: 1500 })]);
    // The probes' 503s while draining are expected: no `Request failed … (errorId …)` error line for each (every rollout).
    expect(lines.filter((l) => l.msg.startsWith('Request failed'))).toEqual([]);
  }, 90_000);

  it('closes connections kept alive idle, and those of requests in flight, while it drains and still listens', async () => {
    const drainMs = 2500;
    const { host, exited, base } = await startListening('4', { SHUTDOWN_DRAIN_MS: String(drainMs) });
    try {
      // A client's kept-alive connection, idle after one answer (a pool that sends now and then).
      const idle = openRaw(base);
      idle.socket.write('GET /health/live HTTP/1.1\r\nHost: cv\r\n\r\n');
      expect(await waitFor(() => /\r\n\r\n\{/.test(idle.received()), 5000)).toBe(true);
      expect(idle.received()).toMatch(/^HTTP\/1\.1 200/);
      expect(idle.received()).not.toMatch(/connection: close/i);
      // A request in flight when the signal comes: its headers are in, its body not yet.
      const inFlight = openRaw(base);
      inFlight.socket.write('POST /v1/credentials HTTP/1.1\r\nHost: cv\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n');
      await new Promise((r) => setTimeout(r, 200));
      expect(inFlight.received()).toBe('');

      const signalled = Date.now();
      host.kill('SIGTERM');
      // The idle connection is closed early in the drain, while the replica still listens: the client's next request
      // opens a new connection (served, or sent elsewhere) instead of meeting the close on this one (a reset).
      expect(await waitFor(() => idle.closedAt() !== undefined, drainMs - 1000)).toBe(true);
      expect(idle.closedAt()! - signalled).toBeLessThan(drainMs - 1000);
      // The request in flight is answered with Connection: close, and its connection closed after the answer.
      inFlight.socket.write('{}');
      expect(await waitFor(() => inFlight.closedAt() !== undefined, drainMs - 1000)).toBe(true);
      expect(inFlight.received()).toMatch(/^HTTP\/1\.1 401/);
      expect(inFlight.received()).toMatch(/\r\nconnection: close\r\n/i);
      expect(inFlight.closedAt()! - signalled).toBeLessThan(drainMs);
      // Still listening then: a new connection is served.
      expect((await get(new Agent(), `${base}/health/live`)).status).toBe(200);
      expect(await exited).toBe(0);
    } finally {
      if (host.exitCode === null && host.signalCode === null) host.kill('SIGKILL');
    }
  }, 90_000);

  // HOST=localhost: Fastify listens on ::1 and 127.0.0.1, the second address on a server of its own that the drain did not
  // see: a client there kept its idle connection until the close (its next request met a reset), met Node's bare 417, and
  // the listening line named the first address alone.
  it('with HOST=localhost on ::1 and 127.0.0.1, names both and drains the connections of either alike', async () => {
    const drainMs = 2500;
    const { host, exited, base, stdout } = await startListening('6', { HOST: 'localhost', SHUTDOWN_DRAIN_MS: String(drainMs), HTTP_REQUEST_TIMEOUT_MS: '1000' }, await dualLocalhost(dir));
    try {
      const port = new URL(base).port;
      const bases = [`http://[::1]:${port}`, `http://127.0.0.1:${port}`];
      const line = stdout().split('\n').find((l) => l.includes('listening on'))!;
      // In either order: the first address is the one `localhost` resolves to first.
      expect((JSON.parse(line) as { msg: string }).msg.split(/ on | and /).slice(1).sort()).toEqual([...bases].sort());
      for (const b of bases) expect(await unmetExpect(`${b}/health/live`)).toEqual({ status: 417, requestId: expect.any(String) });
      // A body that does not arrive within HTTP_REQUEST_TIMEOUT_MS: the host's 408 on either address (the second server's
      // parser errors were Node's bare answers, without a body or request id).
      for (const b of bases) {
        const slow = openRaw(b);
        slow.socket.write('POST /v1/credentials HTTP/1.1\r\nHost: cv\r\nX-Request-Id: slow-on-each\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
        expect(await waitFor(() => slow.closedAt() !== undefined, 5000)).toBe(true);
        expect(slow.received()).toMatch(/^HTTP\/1\.1 408 /);
        expect(JSON.parse(slow.received().slice(slow.received().indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 90008, requestId: 'slow-on-each' });
      }
      // A kept-alive connection on each address, idle after one answer.
      const idle = bases.map((b) => openRaw(b));
      for (const c of idle) {
        c.socket.write('GET /health/live HTTP/1.1\r\nHost: cv\r\n\r\n');
        expect(await waitFor(() => /\r\n\r\n\{/.test(c.received()), 5000)).toBe(true);
      }
      const signalled = Date.now();
      host.kill('SIGTERM');
      for (const c of idle) expect(await waitFor(() => c.closedAt() !== undefined, drainMs - 1000)).toBe(true);
      expect(idle.map((c) => c.closedAt()! - signalled < drainMs - 1000)).toEqual([true, true]);
      expect(await exited).toBe(0);
    } finally {
      if (host.exitCode === null && host.signalCode === null) host.kill('SIGKILL');
    }
  }, 90_000);

  it('serves a request whose headers end once the close has begun (the replica no longer listens), not with a bare 503', async () => {
    const { host, exited, base, stdout } = await startListening('5', { SHUTDOWN_DRAIN_MS: '1500' });
    try {
      host.kill('SIGTERM');
      // Once the drain has begun, a client sends the start of a request (a connection opened after the drain's start
      // is not one of the silent ones it closes)... Waiting for the drain line, not a fixed delay: a late timer on a
      // loaded machine would open the connection after the listener closed (refused, and nothing to serve).
      expect(await waitFor(() => /Draining before shutdown/.test(stdout()), 10_000)).toBe(true);
      const late = openRaw(base);
      late.socket.write('GET /health/live HTTP/1.1\r\nHost: cv\r\n');
      // ...and the rest once the close has begun: the listener is closed, this accepted connection is not.
      const port = Number(new URL(base).port);
      const refused = (): Promise<boolean> =>
        new Promise((resolve) => {
          const probe = connect(port, '127.0.0.1');
          probe.on('connect', () => (probe.destroy(), resolve(false)));
          probe.on('error', () => resolve(true));
        });
      const deadline = Date.now() + 10_000;
      while (!(await refused()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(late.received()).toBe('');
      late.socket.write('\r\n');
      expect(await waitFor(() => late.closedAt() !== undefined, 5000)).toBe(true);
      // Fastify's own answer was a bare 503 (no request id, no log line, not counted): it is served as any other.
      expect(late.received()).toMatch(/^HTTP\/1\.1 200/);
      expect(late.received()).toMatch(/\r\nconnection: close\r\n/i);
      expect(late.received()).toMatch(/\r\nx-request-id: /i);
      expect(await exited).toBe(0);
    } finally {
      if (host.exitCode === null && host.signalCode === null) host.kill('SIGKILL');
    }
  }, 90_000);

  it('says why when the close outlasts SHUTDOWN_TIMEOUT_MS (a request whose body never comes), then exits 1', async () => {
    const { host, exited, base, stdout } = await startListening('6', { SHUTDOWN_DRAIN_MS: '300', SHUTDOWN_TIMEOUT_MS: '1000' });
    try {
      const stuck = openRaw(base);
      stuck.socket.write('POST /v1/credentials HTTP/1.1\r\nHost: cv\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{');
      await new Promise((r) => setTimeout(r, 200));
      host.kill('SIGTERM');
      expect(await exited).toBe(1);
      const lines = stdout().trim().split('\n').map((l) => JSON.parse(l) as { msg: string; level: number; timeoutMs?: number; openConnections?: number });
      expect(lines.find((l) => /did not finish within SHUTDOWN_TIMEOUT_MS/.test(l.msg))).toMatchObject({ level: 50, timeoutMs: 1000, openConnections: 1 });
    } finally {
      if (host.exitCode === null && host.signalCode === null) host.kill('SIGKILL');
    }
  }, 90_000);

  it('with LOG_LEVEL=silent, a close that outlasts SHUTDOWN_TIMEOUT_MS still says why: one plain line on stderr', async () => {
    // Silent: no "listening" line to read the port from, so it is chosen here.
    const port = await freePort();
    const host = startHost('7', { LOG_LEVEL: 'silent', PORT: String(port), SHUTDOWN_DRAIN_MS: '300', SHUTDOWN_TIMEOUT_MS: '1000' });
    let out = '';
    let err = '';
    host.stdout!.on('data', (d) => (out += d));
    host.stderr!.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => host.on('close', (code) => resolve(code)));
    try {
      const base = `http://127.0.0.1:${port}`;
      const up = async (): Promise<boolean> => (await fetch(`${base}/health/live`).then((r) => r.status === 200).catch(() => false));
      const deadline = Date.now() + 60_000;
      while (!(await up()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const stuck = openRaw(base);
      stuck.socket.write('POST /v1/credentials HTTP/1.1\r\nHost: cv\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{');
      await new Promise((r) => setTimeout(r, 200));
      host.kill('SIGTERM');
      expect(await exited).toBe(1);
      expect(out).toBe('');
      expect(err.split('\n').filter((l) => l.startsWith('Shutdown did not finish'))).toEqual([
        expect.stringMatching(/^Shutdown did not finish within SHUTDOWN_TIMEOUT_MS \(1000 ms\): exiting 1 with 1 HTTP connection\(s\) open/),
      ]);
    } finally {
      if (host.exitCode === null && host.signalCode === null) host.kill('SIGKILL');
    }
  }, 90_000);

  it('with GRPC_ENABLED: says where gRPC listens; calls in flight at SIGTERM and during the drain are answered, then it exits 0', async () => {
    const grpcPort = await freePort();
    const user = generateApiKey('drain-keys', 'acme', ['keys:write', 'keys:use']);
    const grpcHost = startHost('3', { SHUTDOWN_DRAIN_MS: '1000', GRPC_ENABLED: 'true', GRPC_PORT: String(grpcPort), AUTH_API_KEYS: JSON.stringify([user.entry]) });
    let stdout = '';
    grpcHost.stdout!.on('data', (d) => (stdout += d));
    const exited = new Promise<number | null>((resolve) => grpcHost.on('close', (code) => resolve(code)));
    const client = new GrpcKeysClient(`127.0.0.1:${grpcPort}`);
    try {
      const deadline = Date.now() + 60_000;
      while (!/Keys gRPC API listening on/.test(stdout) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const line = stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { msg: string; level: number; grpcUrl?: string })
        .find((l) => l.msg.startsWith('Keys gRPC API listening on'));
      expect(line).toMatchObject({ level: 30, grpcUrl: `127.0.0.1:${grpcPort}` });

      const md = { 'x-api-key': user.key };
      expect((await client.call('CreateKey', { name: 'drain-ec', key_type: 'EC' }, md)).error).toBeUndefined();
      // An RSA-4096 key takes the vault a while to make: in flight when the signal arrives.
      const inFlight = client.call('CreateKey', { name: 'drain-rsa', key_type: 'RSA', key_size: 4096 }, md);
      await new Promise((r) => setTimeout(r, 50));
      grpcHost.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      const duringDrain = await client.call('Sign', { name: 'drain-ec', algorithm: 'ES256', digest: Buffer.alloc(32, 1).toString('base64') }, md);
      expect(duringDrain.error).toBeUndefined();
      expect(await inFlight).toMatchObject({ response: { name: 'drain-rsa', key_size: 4096 } }); // a failure shows the call's error
      expect(await exited).toBe(0);
    } finally {
      await client.close();
      if (grpcHost.exitCode === null && grpcHost.signalCode === null) grpcHost.kill('SIGKILL');
    }
  }, 90_000);

  // HOST and GRPC_HOST took any text: a URL or a typo passed the check and the host opened its database, ran its
  // migrations and started its vault before the listen failed (getaddrinfo ENOTFOUND), exit 1, one variable at a time.
  it.each([
    ['HOST alone, a URL', { HOST: 'http://0.0.0.0' }, ['HOST']],
    // Any scheme passed: the host spoke PostgreSQL's protocol to whatever answered there, retrying for 30 s.
    ['DATABASE_URL of another scheme (the Redis URL pasted)', { DATABASE_TYPE: 'postgres', DATABASE_URL: 'redis://127.0.0.1:1/0' }, ['DATABASE_URL']],
    // A missing PEM file failed the start once the module reading it was built (exit 1, ENOENT, no variable named), one at a time.
    [
      'CA files that are not there',
      {
        KEY_VAULT_URL: 'https://localhost:1',
        KEY_VAULT_CREDENTIAL: 'static',
        KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
        KEY_VAULT_CA_CERT_PATH: '/nonexistent/vault-ca.pem',
        SMTP_HOST: '127.0.0.1',
        SMTP_FROM: 'vault@example.test',
        SMTP_CA_CERT_PATH: '/nonexistent/smtp-ca.pem',
      },
      ['KEY_VAULT_CA_CERT_PATH', 'SMTP_CA_CERT_PATH'],
    ],
    // The SDK reads it at the first token request: the host started, and every vault call failed.
    [
      'a workload identity token file that is not there',
      {
        KEY_VAULT_URL: 'https://localhost:1',
        KEY_VAULT_CREDENTIAL: 'workload-identity',
        AZURE_TENANT_ID: '00000000-0000-0000-0000-000000000001',
        AZURE_CLIENT_ID: '00000000-0000-0000-0000-000000000002',
        AZURE_FEDERATED_TOKEN_FILE: '/nonexistent/azure-identity-token',
      },
      ['AZURE_FEDERATED_TOKEN_FILE'],
    ],
    // Each was ignored: the host ran on PostgreSQL and the vault KEY_VAULT_URL names, not on the file or the vault directory the operator set.
    [
      "the variables of the backends not in use (SQLite's on PostgreSQL, the embedded vault's beside KEY_VAULT_URL)",
      {
        DATABASE_TYPE: 'postgres',
        DATABASE_URL: 'postgres://cv@127.0.0.1:1/cv',
        DATABASE_PATH: '/srv/cv.sqlite',
        DATABASE_SQLITE_SYNCHRONOUS: 'normal',
        KEY_VAULT_URL: 'https://localhost:1',
        KEY_VAULT_CREDENTIAL: 'static',
        KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
        EMULATOR_DATA_DIR: '/srv/vault',
        EMULATOR_PORT: '9443',
        PORT: 'x',
      },
      ['DATABASE_PATH', 'DATABASE_SQLITE_SYNCHRONOUS', 'EMULATOR_DATA_DIR', 'EMULATOR_PORT', 'PORT'],
    ],
    // The rules between variables (CACHE_TIER=redis needs REDIS_URL) were checked only once every value parsed: a second run named them.
    [
      'every wrong value at once',
      { HOST: 'bad host', GRPC_ENABLED: 'true', GRPC_HOST: '0.0.0.0:50051', PORT: 'x', CACHE_TIER: 'redis' },
      ['PORT', 'GRPC_HOST', 'HOST', 'CACHE_TIER'],
    ],
  ])('a wrong configuration (%s) stops it before anything opens: exit 78, one plain message naming each variable', async (_what, env, named) => {
    const failed = startHost('-bad-config', env);
    let out = '';
    let err = '';
    failed.stdout!.on('data', (d) => (out += d));
    failed.stderr!.on('data', (d) => (err += d));
    // A configuration let through starts the host, which would outlive the test: stopped, it fails here instead.
    const stop = setTimeout(() => failed.kill('SIGKILL'), 30_000);
    const code = await new Promise<number | null>((resolve) => failed.on('close', (c) => resolve(c)));
    clearTimeout(stop);
    expect({ code, out }).toEqual({ code: 78, out: '' });
    const lines = err.trim().split('\n');
    expect(lines[0]).toBe('Invalid configuration:');
    expect(lines.slice(1, -1).map((l) => /^ {2}- ([A-Z_]+): /.exec(l)?.[1]).sort()).toEqual([...named].sort());
    expect(err).not.toMatch(/^\s+at /m); // no stack
  }, 60_000);

  // One line each: Nest's exception-handler dump (with its stack) and its listen error came first, repeating the cause.
  it.each([
    ['the HTTP port (PORT)', 'PORT', 'address already in use', 'info'],
    ["the embedded vault's port (EMULATOR_PORT)", 'EMULATOR_PORT', 'cannot listen on port', 'info'],
    // Silent writes no line at all: the failure is then one plain line on stderr, or the exit 1 would say nothing.
    ['LOG_LEVEL=silent, the HTTP port (PORT)', 'PORT', 'address already in use', 'silent'],
  ])('a failed start (%s in use) is one error line, fatal, with its reason, and exit 1', async (_what, variable, reason, level) => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = String((taken.address() as AddressInfo).port);
    try {
      const failed = spawn(process.execPath, ['--no-warnings', '--require', writeRequireHook(dir), MAIN], {
        cwd: ROOT,
        env: {
          ...process.env,
          NODE_ENV: 'test',
          LOG_LEVEL: level,
          PORT: '0',
          EMULATOR_PORT: '0',
          [variable]: port,
          EMULATOR_DATA_DIR: join(dir, `vault-${variable}-${level}`),
          DATABASE_PATH: join(dir, `db-${variable}-${level}.sqlite`),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      failed.stdout!.on('data', (d) => (out += d));
      failed.stderr!.on('data', (d) => (err += d));
      // 'close', not 'exit': 'exit' may come before the last output was read from the pipes.
      const code = await new Promise<number | null>((resolve) => failed.on('close', (c) => resolve(c)));
      expect(code).toBe(1);
      if (level === 'silent') {
        expect(out).toBe('');
        expect(err.split('\n').filter((l) => l.startsWith('Failed to start'))).toEqual([expect.stringContaining(reason)]);
        return;
      }
      // Nest's own lines (no colours, no plain text) and the failure: all JSON on stdout; nothing on stderr.
      const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; err?: Record<string, unknown> });
      if (variable === 'PORT') expect(lines.some((l) => l.msg === 'Nest application successfully started')).toBe(true);
      expect(lines.filter((l) => l.level >= 50)).toEqual([
        expect.objectContaining({ level: 60, msg: 'Failed to start', err: expect.objectContaining({ code: 'EADDRINUSE', reason: expect.stringContaining(reason) }) }),
      ]);
      expect(err).toBe('');
    } finally {
      taken.close();
    }
  }, 90_000);
});
