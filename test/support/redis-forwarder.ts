import { createServer, Socket, type AddressInfo, type Server } from 'node:net';

export interface RedisForwarder {
  port: number;
  /** Every connection reset, and new ones refused: Redis unreachable. */
  close(): Promise<void>;
}

/**
 * A plain TCP forwarder to Redis on a port of its own (`port` 0: a free one; a closed forwarder's port: Redis back where
 * it was). Closing it is Redis becoming unreachable (connections reset, then refused).
 */
export async function startRedisForwarder(target: URL, port = 0): Promise<RedisForwarder> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = new Socket().connect(Number(target.port || 6379), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
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
  };
}
