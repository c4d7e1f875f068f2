/**
 * The part of an ioredis connection (`Redis`) the shared cache uses. Structural, so the published
 * declarations do not import ioredis: it is an optional peer, and a host without it (and with
 * `skipLibCheck: false`) would not compile. An ioredis `Redis` fits both.
 */
export interface CacheRedisClient {
  eval(script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>;
  scan(cursor: string, matchToken: 'MATCH', pattern: string, countToken: 'COUNT', count: number): Promise<[cursor: string, keys: string[]]>;
  del(...keys: string[]): Promise<number>;
  publish(channel: string, message: string): Promise<number>;
}

/** The connection the invalidation bus subscribes on (a subscribed connection runs no other command). */
export interface CacheRedisSubscriber {
  readonly status: string;
  on(event: 'message', listener: (channel: string, message: string) => void): unknown;
  on(event: 'close' | 'ready', listener: () => void): unknown;
  subscribe(...channels: string[]): Promise<unknown>;
  unsubscribe(...channels: string[]): Promise<unknown>;
  /** Closes the connection at once (the bus made it with the host's factory, so the bus closes it). */
  disconnect(): void;
}
