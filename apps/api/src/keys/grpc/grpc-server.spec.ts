import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Http2Session } from 'node:http2';
import { connect, type Server as NetServer, type Socket } from 'node:net';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { Transport } from '@nestjs/microservices';
import { closeSilentConnections, keysGrpcOptions, protoRoot } from './grpc-server';

describe('keys gRPC server options', () => {
  const repo = resolve(__dirname, '../../../../..');

  it('finds proto/ from the sources and from a build under dist/', () => {
    expect(protoRoot()).toBe(join(repo, 'proto'));
    expect(protoRoot(join(repo, 'dist/apps/api/src/keys/grpc'))).toBe(join(repo, 'proto'));
  });

  it('says what is missing when the host was shipped without proto/', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cv-noproto-'));
    try {
      expect(() => protoRoot(dir)).toThrow(/proto\/credential_vault\/keys\/v1\/keys.proto was not found .* ship the proto\/ directory/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('listens on GRPC_HOST:GRPC_PORT (IPv6 literals bracketed) with the keys package', () => {
    expect(keysGrpcOptions({ host: '127.0.0.1', port: 50051 })).toMatchObject({
      transport: Transport.GRPC,
      options: { package: 'credential_vault.keys.v1', url: '127.0.0.1:50051' },
    });
    // keys.proto, as the server loads it (Nest is handed the definition, not the file).
    expect(Object.keys(keysGrpcOptions({ host: '127.0.0.1', port: 50051 }).options.packageDefinition ?? {})).toContain('credential_vault.keys.v1.KeysService');
    expect(keysGrpcOptions({ host: '::1', port: 6000 }).options.url).toBe('[::1]:6000');
  });

  it('closes idle connections after idleMs (grpc.max_connection_idle_ms), and none without it', () => {
    expect(keysGrpcOptions({ host: '127.0.0.1', port: 50051 }, [], undefined, 3000).options.channelOptions).toMatchObject({ 'grpc.max_connection_idle_ms': 3000 });
    expect(keysGrpcOptions({ host: '127.0.0.1', port: 50051 }).options.channelOptions).not.toHaveProperty('grpc.max_connection_idle_ms');
  });

  describe('closeSilentConnections', () => {
    /** Whether `socket` is closed within `ms`. */
    const closedWithin = (socket: Socket, ms: number) =>
      new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        socket.once('close', () => (clearTimeout(timer), resolve(true)));
      });

    // It reads grpc-js' private Server#http2Servers: this fails on a grpc-js that moved it (the host would only warn).
    it("on this grpc-js' Server: a connection that sends nothing is reset after `ms`, one that spoke is left to grpc-js", async () => {
      const server = new Server();
      const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
      const sockets: Socket[] = [];
      try {
        expect(closeSilentConnections(server, 200)).toBe(true);
        const silent = connect(port, '127.0.0.1').on('error', () => undefined);
        const spoke = connect(port, '127.0.0.1').on('error', () => undefined);
        sockets.push(silent, spoke);
        spoke.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
        expect(await Promise.all([closedWithin(silent, 2_000), closedWithin(spoke, 600)])).toEqual([true, false]);
      } finally {
        for (const s of sockets) s.destroy();
        server.forceShutdown();
      }
    });

    /** A grpc-js Server bound on a free port of 127.0.0.1, a way to open silent connections to it, and a teardown of both. */
    async function boundServer(options: Record<string, unknown>) {
      const server = new Server(options);
      const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
      const sockets: Socket[] = [];
      const silent = (options: { allowHalfOpen?: boolean } = {}) => {
        const socket = connect({ port, host: '127.0.0.1', ...options }).on('error', () => undefined);
        sockets.push(socket);
        return socket;
      };
      return { server, silent, close: () => (sockets.forEach((s) => s.destroy()), server.forceShutdown()) };
    }

    // The host's case: grpc-js' idle limit (grpc.max_connection_idle_ms) is the same `ms`, armed as the HTTP/2 session
    // starts. When it came first, its close ended the socket (a FIN, which a client reading nothing never sees), then the
    // reset met a socket being shut down: libuv refuses (EINVAL) and Node drops the handle unclosed (an fd held for ever).
    it('is armed before the HTTP/2 session: a session closed at the same `ms` (grpc-js idle limit) does not come first', async () => {
      const { server, silent, close } = await boundServer({});
      try {
        for (const listening of (server as unknown as { http2Servers: Map<NetServer, unknown> }).http2Servers.keys()) {
          listening.on('session', (session: Http2Session) => setTimeout(() => session.destroy(), 200).unref());
        }
        expect(closeSilentConnections(server, 200)).toBe(true);
        const all = Array.from({ length: 4 }, () => silent());
        expect(await Promise.all(all.map((s) => closedWithin(s, 2_000)))).toEqual(all.map(() => true));
      } finally {
        close();
      }
    });

    it('a silent socket already being ended at `ms` is destroyed, its descriptor freed: what the client sends then meets a reset', async () => {
      const { server, silent, close } = await boundServer({});
      try {
        expect(closeSilentConnections(server, 200)).toBe(true);
        // Armed before closeSilentConnections' deadline: fires first, in the same turn.
        for (const listening of (server as unknown as { http2Servers: Map<NetServer, unknown> }).http2Servers.keys()) {
          listening.prependListener('connection', (socket: Socket) => setTimeout(() => socket.end(), 200).unref());
        }
        // A client that reads (what it is sent, then the FIN) and keeps its own side open: what it writes then is taken
        // in silence by a descriptor still open, and reset by a closed one (its next write fails: EPIPE).
        const socket = silent({ allowHalfOpen: true }).resume();
        await new Promise((resolve) => socket.once('end', resolve));
        socket.write('x');
        setTimeout(() => socket.writable && socket.write('y'), 200).unref();
        expect(await closedWithin(socket, 1_000)).toBe(true);
      } finally {
        close();
      }
    });

    it('says so (false) when the server has no listening http2Servers to watch', () => {
      expect(closeSilentConnections({} as Server, 200)).toBe(false);
      expect(closeSilentConnections({ http2Servers: new Map() } as unknown as Server, 200)).toBe(false);
      expect(closeSilentConnections({ http2Servers: [] } as unknown as Server, 200)).toBe(false);
    });
  });
});
