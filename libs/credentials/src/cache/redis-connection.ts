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

/** What `closeRedisConnection` needs of an ioredis connection. */
export interface ClosableRedisConnection {
  readonly status: string;
  /** Sent when `ready`: the replies already asked for come first, then Redis closes the connection. */
  quit(): Promise<unknown>;
  /** Drops the connection (and any reconnection scheduled). */
  disconnect(): void;
  once(event: 'end', listener: () => void): unknown;
}

/** The connection the invalidation bus subscribes on (a subscribed connection runs no other command). */
export interface CacheRedisSubscriber extends ClosableRedisConnection {
  on(event: 'message', listener: (channel: string, message: string) => void): unknown;
  on(event: 'close' | 'ready', listener: () => void): unknown;
  subscribe(...channels: string[]): Promise<unknown>;
  unsubscribe(...channels: string[]): Promise<unknown>;
}

/**
 * The close under way per connection, until it ends: a second caller (the lib and the host both close a subscriber)
 * waits for the first. Forgotten at `end`, so a connection opened again (`connect()`) can be closed again.
 */
const closing = new WeakMap<ClosableRedisConnection, Promise<boolean>>();

/**
 * Closes an ioredis connection and resolves once its socket has closed (`end`), within `deadlineMs` whatever Redis
 * does: QUIT when `ready`, given half the deadline (a stalled Redis never answers it); else, or then, `disconnect()`,
 * and the rest of the deadline for the socket to close. Resolves `true` when no socket is left, `false` when the
 * deadline passed first (ioredis then destroys the socket after its `disconnectTimeout`). Idempotent: a connection
 * already ended, or already being closed, is not disconnected again (that would leave a 2 s timer of ioredis's
 * running on a closed socket). One between reconnection attempts has no socket to wait for: `disconnect()` only
 * cancels the next attempt (it never reports `end`).
 */
export function closeRedisConnection(c: ClosableRedisConnection, deadlineMs = 1000): Promise<boolean> {
  if (c.status === 'end') return Promise.resolve(true);
  let done = closing.get(c);
  if (!done) {
    let open = true; // a connection that never connected ends at once, within close()
    c.once('end', () => {
      open = false;
      closing.delete(c);
    });
    done = close(c, deadlineMs);
    if (open) closing.set(c, done);
  }
  return done;
}

async function close(c: ClosableRedisConnection, deadlineMs: number): Promise<boolean> {
  const ended = new Promise<true>((resolve) => c.once('end', () => resolve(true)));
  const until = Date.now() + deadlineMs;
  const within = async (work: Promise<boolean>, at: number): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, at - Date.now()))));
    try {
      return await Promise.race([work, late]);
    } finally {
      clearTimeout(timer);
    }
  };
  const status = () => c.status; // read afresh after each await (it changes meanwhile)
  if (status() === 'ready') {
    const quit = c.quit().then(
      () => true,
      () => false,
    );
    // Answered: Redis closes the connection; its socket's close is what is waited for.
    if ((await within(quit, until - deadlineMs / 2)) && (await within(ended, until))) return true;
    if (status() === 'end') return true;
  }
  const reconnecting = status() === 'reconnecting';
  c.disconnect();
  return reconnecting || within(ended, until);
}
