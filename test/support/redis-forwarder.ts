import { createServer, Socket, type AddressInfo, type Server } from 'node:net';

export interface RedisForwarder {
  port: number;
  /** Every connection reset, and new ones refused: Redis unreachable. */
  close(): Promise<void>;
  /**
   * Redis stalled: every connection, open or new, stays open and nothing goes through either way any more (what the
   * client sends is read and held, so `heldCommands` can count it).
   */
  stall(): void;
  /** How many commands named `name` (case-insensitive) the clients sent since `stall()`, held unforwarded. */
  heldCommands(name: string): number;
}

/**
 * A plain TCP forwarder to Redis on a port of its own (`port` 0: a free one; a closed forwarder's port: Redis back where
 * it was). Closing it is Redis becoming unreachable (connections reset, then refused); stalling it, Redis that accepts
 * connections and never answers.
 */
export async function startRedisForwarder(target: URL, port = 0): Promise<RedisForwarder> {
  const sockets = new Set<Socket>();
  let stalled = false;
  const held: Buffer[] = [];
  const server: Server = createServer((client) => {
    const upstream = new Socket().connect(Number(target.port || 6379), target.hostname);
    sockets.add(client).add(upstream);
    client.on('data', (chunk: Buffer) => (stalled ? held.push(chunk) : upstream.write(chunk)));
    upstream.on('data', (chunk: Buffer) => stalled || client.write(chunk));
    const end = () => [client, upstream].forEach((s) => s.destroy());
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
    stall: () => {
      stalled = true;
    },
    heldCommands: (name) => {
      // A command as ioredis writes it: an array whose first bulk string is the name (`*<n>\r\n$<len>\r\n<name>\r\n`).
      const text = Buffer.concat(held).toString('latin1');
      return text.match(new RegExp(`\\*\\d+\\r\\n\\$${name.length}\\r\\n${name}\\r\\n`, 'gi'))?.length ?? 0;
    },
  };
}
