import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of PostgreSQL that can stop answering the way a hung server, a stalled proxy or pooler,
 * or a path that drops packets does: sockets stay open (their kernel still ACKs, so TCP keepalive never trips)
 * and no byte goes through.
 */
export interface StallProxy {
  /** `target` with this proxy's host and port. */
  url: string;
  /** Every open connection stops forwarding both ways; new ones are accepted and never answered. */
  stall(): void;
  /** New connections go through again; the stalled ones stay stalled (the path they took is still wedged). */
  passNew(): void;
  /** Every stalled connection forwards again, what waited included (a resumed server or proxy). */
  resume(): void;
  /**
   * One-shot: the next chunk going `direction` (`request`: to PostgreSQL, `reply`: back to the client) whose bytes
   * match `pattern` is not forwarded and its connection is cut both ways — a socket that breaks before the server
   * got a statement, or after it ran it (an autocommit statement then committed) but before its answer arrived.
   * Called again before it fired: the cuts fire in turn, each after the one before it. `how: 'stall'`: that chunk is
   * swallowed and its connection stalls instead (a hung path after the server ran the statement). `how: { poolerError }`:
   * the client gets that FATAL ErrorResponse (08P01, severity, SQLSTATE and message only) before the cut, as PgBouncer
   * tells its client why it closes the connection (`server conn crashed?` when the server connection under a query broke).
   */
  cutNext(direction: 'request' | 'reply', pattern: RegExp, how?: CutHow): void;
  /** The server-side ports of the proxy's connections that are open (PostgreSQL's `client_port`). */
  serverPorts(): number[];
  close(): Promise<void>;
}

export type CutHow = 'cut' | 'stall' | { poolerError: string };

/** A FATAL ErrorResponse with SQLSTATE 08P01, the fields PgBouncer's send_pooler_error writes. */
function poolerErrorResponse(message: string): Buffer {
  const fields = Buffer.from(`SFATAL\0C08P01\0M${message}\0\0`, 'utf8');
  const header = Buffer.alloc(5);
  header.write('E', 0, 'latin1');
  header.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([header, fields]);
}

export async function startStallProxy(target: string): Promise<StallProxy> {
  const to = new URL(target);
  const pairs = new Set<{ client: Socket; server: Socket; stalled: boolean }>();
  let stallNew = false;
  const cuts: { direction: 'request' | 'reply'; pattern: RegExp; how: CutHow }[] = [];
  const proxy: Server = createServer((client) => {
    const server = connect(Number(to.port || 5432), to.hostname);
    const pair = { client, server, stalled: stallNew };
    pairs.add(pair);
    const link = (from: Socket, into: Socket) => {
      const direction = from === client ? 'request' : 'reply';
      from.on('data', (chunk: Buffer) => {
        const cut = cuts[0];
        if (cut?.direction === direction && cut.pattern.test(chunk.toString('latin1'))) {
          cuts.shift();
          if (cut.how === 'stall') {
            pause(pair);
            return;
          }
          if (typeof cut.how === 'object') {
            // Nothing more from the server; the error reaches the client before either socket closes.
            server.pause();
            client.end(poolerErrorResponse(cut.how.poolerError), () => server.destroy());
            return;
          }
          client.destroy();
          server.destroy();
          return;
        }
        into.write(chunk);
      });
      from.on('end', () => into.end());
      from.on('error', () => into.destroy());
      from.on('close', () => {
        into.destroy();
        pairs.delete(pair);
      });
    };
    link(client, server);
    link(server, client);
    if (pair.stalled) pause(pair);
  });
  const pause = (p: { client: Socket; server: Socket; stalled: boolean }) => {
    p.stalled = true;
    p.client.pause();
    p.server.pause();
  };
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String((proxy.address() as AddressInfo).port);
  return {
    url: url.toString(),
    stall: () => {
      stallNew = true;
      for (const p of pairs) pause(p);
    },
    passNew: () => {
      stallNew = false;
    },
    resume: () => {
      stallNew = false;
      for (const p of pairs) {
        p.stalled = false;
        p.client.resume();
        p.server.resume();
      }
    },
    cutNext: (direction, pattern, how = 'cut') => {
      cuts.push({ direction, pattern, how });
    },
    serverPorts: () => [...pairs].map((p) => p.server.localPort).filter((port): port is number => port !== undefined),
    close: async () => {
      for (const p of pairs) {
        p.client.destroy();
        p.server.destroy();
      }
      await new Promise((resolve) => proxy.close(resolve));
    },
  };
}
