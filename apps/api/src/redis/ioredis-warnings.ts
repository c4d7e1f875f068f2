import { Logger } from '@nestjs/common';

/**
 * The warnings ioredis 5 writes with `console.warn` (node_modules/ioredis/built/redis/event_handler.js, at AUTH on each
 * connect, and Redis.js `_readyCheck`), each as the line the host logs instead. Only the first word of a Redis reply is
 * kept: its rest names the user (`NOPERM User <name> has no permissions to run the 'info' command`).
 */
const IOREDIS_WARNINGS: readonly { match: RegExp; line: (m: RegExpExecArray) => string }[] = [
  {
    match: /^\[WARN\] (?:Redis server|This Redis server's `default` user) does not require a password, but a password was supplied/,
    line: () => 'REDIS_URL gives a password, and Redis requires none (its AUTH refused it): the connection goes on without; remove the password from REDIS_URL, or set one on Redis',
  },
  {
    match: /^\[ERROR\] The server returned "wrong number of arguments for 'auth' command"/,
    line: () => 'REDIS_URL gives a user name, and Redis (5 or older) takes a password alone: the connection goes on unauthenticated; remove the user name from REDIS_URL',
  },
  {
    match: /^Skipping the ready check because INFO command fails: "([A-Z]+)/,
    line: (m) => `Redis refused INFO (${m[1]}): ioredis skips its check that Redis has loaded its data, so commands may meet a Redis still loading; give the REDIS_URL user INFO`,
  },
];

/** How long a routed warning is not logged again: ioredis repeats it at each connect of each connection. */
const REPEAT_AFTER_MS = 60_000;

/** The routing in place while a host holds it (undefined: console.warn is its own). */
let routing: { previous: typeof console.warn; routed: typeof console.warn; holders: number; active: boolean } | undefined;

/**
 * Routes ioredis' console warnings into the host's log (context `Redis`, `warn`), so that every line the host prints is
 * JSON: they came on stderr as plain text, beside the log. Each is logged once a minute at most (every connection repeats
 * it at each connect). Anything else written with `console.warn` is left as it was.
 *
 * console.warn is the process's: it is routed while a holder (a HostRedis with connections) holds it, and given back once
 * the last one calls the function returned (its shutdown) — a host embedded in an application, or started again in the
 * same process, leaves console.warn as it found it. Meanwhile an embedding application's own ioredis clients' warnings
 * are logged the same way (console.warn does not say which connection wrote them).
 */
export function routeIoredisWarnings(): () => void {
  const r = (routing ??= install());
  r.holders++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--r.holders > 0) return;
    r.active = false;
    // Someone else's wrapper on top of ours stays: ours, inactive now, passes everything through.
    if (console.warn === r.routed) console.warn = r.previous;
    if (routing === r) routing = undefined;
  };
}

function install(): NonNullable<typeof routing> {
  const logger = new Logger('Redis');
  const loggedAt = new Map<string, number>();
  const previous = console.warn;
  const r = {
    previous,
    holders: 0,
    active: true,
    routed: (...args: unknown[]) => {
      const text = r.active && typeof args[0] === 'string' ? args[0] : undefined;
      for (const warning of IOREDIS_WARNINGS) {
        const m = text === undefined ? null : warning.match.exec(text);
        if (!m) continue;
        const line = warning.line(m);
        const now = Date.now();
        if (now - (loggedAt.get(line) ?? -Infinity) >= REPEAT_AFTER_MS) {
          loggedAt.set(line, now);
          logger.warn(line);
        }
        return;
      }
      previous.apply(console, args);
    },
  };
  console.warn = r.routed;
  return r;
}
