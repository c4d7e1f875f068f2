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
   * swallowed and its connection stalls instead (a hung path after the server ran the statement).
   */
  cutNext(direction: 'request' | 'reply', pattern: RegExp, how?: 'cut' | 'stall'): void;
  /** The server-side ports of the proxy's connections that are open (PostgreSQL's `client_port`). */
  serverPorts(): number[];
  close(): Promise<void>;
}

export async function startStallProxy(target: string): Promise<StallProxy> {
  const to = new URL(target);
  const pairs = new Set<{ client: Socket; server: Socket; stalled: boolean }>();
  let stallNew = false;
  const cuts: { direction: 'request' | 'reply'; pattern: RegExp; how: 'cut' | 'stall' }[] = [];
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
