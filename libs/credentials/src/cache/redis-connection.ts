import { withTimeout } from '@app/common';

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
  /** ioredis's connection state (`ready` once it runs commands): `health()` reads it. A client without it is judged by its calls. */
  readonly status?: string;
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
 * The last close per connection (forgotten at `end`): a second caller (the lib and the host both close a subscriber)
 * waits for one under way rather than closing again.
 */
const closing = new WeakMap<ClosableRedisConnection, { done: Promise<boolean>; settled: boolean }>();

/** States in which a connection has, or is opening, a socket (ioredis's `status`). */
const OPEN = new Set(['connecting', 'connect', 'ready']);

/**
 * Closes an ioredis connection and resolves once its socket has closed (`end`), within `deadlineMs` whatever Redis
 * does: QUIT when `ready`, given half the deadline (a stalled Redis never answers it); else, or then, `disconnect()`,
 * and the rest of the deadline for the socket to close. Resolves `true` when no socket is left, `false` when the
 * deadline passed first (ioredis then destroys the socket after its `disconnectTimeout`). Idempotent: a connection
 * already ended, or already being closed, is not disconnected again (that would leave a 2 s timer of ioredis's
 * running on a closed socket); after a close that gave up, a later caller closes again (its socket, half closed, is
usually still `ready`: ioredis then arms its timer once more) or waits for `end`, within its own deadline.
 * One between reconnection attempts has no socket to wait for: `disconnect()` only cancels the next attempt (it never
 * reports `end`, and ioredis still arms that 2 s timer there). A connection opened again since (`connect()`) is closed again.
 */
export function closeRedisConnection(c: ClosableRedisConnection, deadlineMs = 1000): Promise<boolean> {
  if (c.status === 'end') return Promise.resolve(true);
  const last = closing.get(c);
  if (last && !last.settled) return last.done;
  if (last && !OPEN.has(c.status)) return c.status === 'reconnecting' ? Promise.resolve(true) : endWithin(c, deadlineMs);
  if (!last) c.once('end', () => closing.delete(c));
  const entry = { done: close(c, deadlineMs), settled: false };
  // Both ways (a `.finally` chain would reject unhandled, beside the caller's own rejection, if the close threw).
  const settled = () => void (entry.settled = true);
  entry.done.then(settled, settled);
  closing.set(c, entry);
  return entry.done;
}

/** Resolves `true` at the connection's `end`, `false` once `deadlineMs` passed first. */
function endWithin(c: ClosableRedisConnection, deadlineMs: number): Promise<boolean> {
  return within(new Promise<true>((resolve) => c.once('end', () => resolve(true))), Date.now() + deadlineMs);
}

/** `work`'s answer, or `false` once the time `at` has passed first (the waits given here never reject). */
function within(work: Promise<boolean>, at: number): Promise<boolean> {
  return withTimeout(work, Math.max(0, at - Date.now())).catch(() => false);
}

async function close(c: ClosableRedisConnection, deadlineMs: number): Promise<boolean> {
  const ended = new Promise<true>((resolve) => c.once('end', () => resolve(true)));
  const until = Date.now() + deadlineMs;
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

/**
 * What Redis refused, when it refused a command for lack of permission (the connection's user's ACL), in words for a
 * log line or readiness: `Redis refused EVALSHA for lack of permission (NOPERM)`, `… for lack of permission on a key
 * (NOPERM)` / `… on a channel` (outside the user's key or channel patterns: the command itself is allowed), `Redis
 * refused a command in EVAL's script for lack of permission (ERR)` (one a script calls; `Redis refused PUBLISH in
 * EVAL's script …` when the reply names it). Undefined for any other error. Only the commands' names (ioredis'
 * `command.name` on its error, or the reply's) and the reply's first word: the rest names the user.
 *
 * The replies, by version: 7.0 `NOPERM this user has no permissions to run the '<cmd>' command` / `… to access one of
 * the keys|channels used as arguments`, in a script `ERR The user executing the script can't run this command or
 * subcommand` / `can't access at least one of the keys …` / `can't publish to the channel …`; 7.2 and later, and Valkey,
 * `NOPERM User <name> has no permissions to run the '<cmd>' command` / `NOPERM No permissions to access a key|channel`,
 * in a script `ERR ACL failure in script: <the same>`; a script's reply ends with ` script: <sha>, on @user_script:1.`.
 */
export function redisCommandRefusal(e: unknown): string | undefined {
  if (!(e instanceof Error)) return undefined;
  const m = e.message;
  // Told by the reply's start only: the user's name, further on, could read like anything.
  const inScript = /^ERR (?:The user executing the script can't|ACL failure in script: )/.test(m);
  const word = inScript ? 'ERR' : /^NOPERM\b/.test(m) ? 'NOPERM' : undefined;
  if (!word) return undefined;
  const on = /^(?:NOPERM |ERR ACL failure in script: )(?:this user has no permissions to access one of the|No permissions to access a) (key|channel)s?\b/.exec(m)?.[1] ??
    (/^ERR The user executing the script can't access at least one of the keys/.test(m) ? 'key' : /^ERR The user executing the script can't publish to the channel/.test(m) ? 'channel' : undefined);
  const named = (/ has no permissions to run the '([^' ]{1,64})' command/.exec(m)?.[1]);
  const sent = commandName((e as { command?: { name?: unknown } }).command?.name);
  const why = `for lack of permission${on ? ` on a ${on}` : ''} (${word})`;
  if (inScript) return `Redis refused ${commandName(named) ?? 'a command'} in ${sent ? `${sent}'s` : 'a'} script ${why}`;
  return `Redis refused ${sent ?? commandName(named) ?? 'a command'} ${why}`;
}

/** A command's name in capitals (`CONFIG|GET`), or undefined when it does not look like one. */
function commandName(name: unknown): string | undefined {
  return typeof name === 'string' && /^[a-z][a-z0-9|._-]{0,63}$/i.test(name) ? name.toUpperCase() : undefined;
}
