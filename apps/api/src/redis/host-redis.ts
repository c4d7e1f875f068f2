import { Global, Inject, Injectable, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import { OutageLog } from '@app/common';
import { closeRedisConnection } from '@app/credentials';
import { Redis } from 'ioredis';
import { APP_CONFIG, AppConfig } from '../config/app.config';
import { routeIoredisWarnings } from './ioredis-warnings';

/**
 * The host's Redis connections, when `REDIS_URL` is set (`enabled` false otherwise: everything that
 * could share state through Redis then stays per process). One command connection shared by every
 * user; subscribers take their own with `subscriber()` (a subscribed ioredis connection can run no
 * other command). Every key must start with `keyPrefix` (but RedisPrefixGuard's, which checks the prefix). All connections close at shutdown.
 */
@Injectable()
export class HostRedis implements OnApplicationShutdown {
  private readonly logger = new Logger('Redis');
  private commandClient?: Redis;
  private readonly connections: Redis[] = [];
  private readonly outages = new WeakMap<Redis, RedisOutageLog>();
  /** Gives console.warn back (see routeIoredisWarnings): held from the first connection to shutdown. */
  private releaseWarnings?: () => void;
  readonly enabled: boolean;
  readonly keyPrefix: string;
  /** Where REDIS_URL points, `host:port` (never its user or password): what a line about an unreachable Redis names. */
  readonly address?: string;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.enabled = config.redis !== undefined;
    this.keyPrefix = config.redis?.keyPrefix ?? 'cv:';
    this.address = config.redis && redisAddress(config.redis.url);
  }

  /** The shared command connection (created on first use). Throws when Redis is not configured. */
  get client(): Redis {
    this.commandClient ??= this.connect('commands');
    return this.commandClient;
  }

  /** Redis refuses the command connection's credentials, now (readiness says so rather than "does not answer"). */
  get credentialsRefused(): boolean {
    return this.refusedCredentialsCode !== undefined;
  }

  /** The first word of Redis' refusal of the command connection's credentials (`WRONGPASS`, `NOAUTH`, …), now; else undefined. */
  get refusedCredentialsCode(): string | undefined {
    const outage = this.commandOutage();
    return outage?.currentCause === 'credentials' ? outage.currentCode : undefined;
  }

  /** The server at REDIS_URL answers the command connection, not in the Redis protocol, now (a wrong host or port). */
  get notRedis(): boolean {
    return this.commandOutage()?.currentCause === 'protocol';
  }

  /**
   * Why the command connection cannot reach Redis now, for readiness and the start line — `connection refused
   * (ECONNREFUSED) at 127.0.0.1:6379` — or undefined (no outage, or another cause: credentials, not Redis).
   */
  get unreachable(): string | undefined {
    const outage = this.commandOutage();
    const code = outage?.currentCause === 'unreachable' ? outage.currentCode : undefined;
    return code === undefined ? undefined : `${UNREACHABLE_WORDS[code] ? `${UNREACHABLE_WORDS[code]} (${code})` : code} at ${this.address}`;
  }

  /**
   * The command connection's outage under way, whatever its cause, in words for a line about a command that failed
   * meanwhile — a command given up while the connection retries (MaxRetriesPerRequestError) says nothing of why —
   * or undefined when there is none.
   */
  get outage(): string | undefined {
    const credentials = this.refusedCredentialsCode;
    if (credentials) return `Redis refused the credentials of REDIS_URL (${credentials})`;
    if (this.notRedis) return 'the server at REDIS_URL is not Redis (its answer is not the Redis protocol)';
    const unreachable = this.unreachable;
    return unreachable && `Redis is not reachable: ${unreachable}`;
  }

  private commandOutage(): RedisOutageLog | undefined {
    return this.commandClient && this.outages.get(this.commandClient);
  }

  /** A new connection for SUBSCRIBE; closed with the others at shutdown. */
  subscriber(name = 'subscriber'): Redis {
    return this.connect(name);
  }

  private connect(name: string): Redis {
    if (!this.config.redis) throw new Error('Redis is not configured (REDIS_URL is unset)');
    // ioredis writes some warnings with console.warn (a password Redis does not require, INFO refused): into the log.
    this.releaseWarnings ??= routeIoredisWarnings();
    const redis = new Redis(this.config.redis.url, {
      connectionName: `credential-vault:${name}`,
      // Commands fail fast while disconnected instead of queueing without bound; callers fall back or fail closed.
      maxRetriesPerRequest: 2,
      enableOfflineQueue: true,
      lazyConnect: false,
      // A peer gone without a word is noticed in about a minute, not the OS's two hours (the cache's
      // heartbeat notices a silent subscription sooner, in seconds).
      keepAlive: 10_000,
    });
    // ioredis emits 'error' on every failed reconnect (every 2 s once its backoff is at its cap), and a listener is
    // needed or Node treats it as unhandled: an outage is logged once, then each minute it lasts, and its end once.
    const outage = new RedisOutageLog(name, this.logger);
    redis.on('error', (error: NodeJS.ErrnoException) => outage.failed(error));
    redis.on('ready', () => outage.answered());
    this.outages.set(redis, outage);
    this.connections.push(redis);
    return redis;
  }

  /**
   * Every connection closed, and its socket with it: QUIT when connected (pending replies are delivered first);
   * otherwise, or when QUIT does not finish within a second, the socket is dropped (while Redis is unreachable a
   * queued QUIT never settles and shutdown would hang until SHUTDOWN_TIMEOUT_MS). A connection another owner
   * closes too (the credential cache's subscriber) is closed once.
   */
  async onApplicationShutdown(): Promise<void> {
    await Promise.all(this.connections.map((c) => closeRedisConnection(c, 2_000)));
    this.connections.length = 0;
    this.commandClient = undefined;
    this.releaseWarnings?.();
    this.releaseWarnings = undefined;
  }
}

/**
 * `host:port` of a Redis URL as ioredis reads it (its query's `host` and `port` when the URL names none; 6379): no user,
 * password, database or options. `REDIS_URL` when that could be part of them — an `@` after the host, as when a
 * password holds an unescaped `/`, `?` or `#` and the URL's "host" is its user name, its "port" the password's first
 * digits — or when the URL is not one.
 */
export function redisAddress(url: string): string {
  const afterHost = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*(.*)$/is.exec(url)?.[1] ?? '';
  if (afterHost.includes('@')) return "REDIS_URL (an '@' after its host: percent-encode a '/', '?' or '#' in its password)";
  try {
    const u = new URL(url);
    const host = u.hostname || u.searchParams.get('host');
    if (!host) return 'REDIS_URL';
    return `${host}:${u.port || u.searchParams.get('port') || '6379'}`;
  } catch {
    return 'REDIS_URL';
  }
}

/** What the system error of a failed connect means, in words for an operator. */
const UNREACHABLE_WORDS: Partial<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ETIMEDOUT: 'connection timed out',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
};

/**
 * The first word of an error reply in which Redis refuses the connection's credentials, which ioredis emits as an
 * `error` at each connect: NOAUTH (a password is required, none was given), WRONGPASS (Redis 6+: no such user, a wrong
 * password, or the user disabled), ERR for Redis 5 and earlier (`ERR invalid password`, `ERR AUTH …`). Only that word
 * is ever written: the URL carries the password, and the user name names the deployment's account.
 */
export function refusedCredentials(error: Error): string | undefined {
  return /^(?:Ready check failed: )?(NOAUTH|WRONGPASS|ERR(?= invalid password| AUTH\b))/.exec(error.message)?.[1];
}

/**
 * `NOPERM` when Redis refused a command because the connection's user lacks the right to run it (its ACL): Redis
 * answers, the credentials are accepted, that command is not allowed. Only that word is ever written: the rest of the
 * reply names the user (`NOPERM User <name> has no permissions to run the 'ping' command`).
 */
export function refusedPermission(error: unknown): 'NOPERM' | undefined {
  return error instanceof Error && /^NOPERM\b/.test(error.message) ? 'NOPERM' : undefined;
}

/** What the lines of an outage say, by its cause. */
const OUTAGE_WORDS = {
  unreachable: { first: 'Redis does not answer; reconnecting (logged again each minute it lasts, and once it is back)', lasting: 'Redis does not answer for', end: 'Redis answers again after' },
  credentials: { first: 'Redis refused the credentials of REDIS_URL; retrying (logged again each minute it lasts, and once they are accepted)', lasting: 'Redis refuses the credentials of REDIS_URL for', end: 'Redis accepts the credentials again after' },
  protocol: {
    first: 'the server at REDIS_URL answers, not in the Redis protocol (a wrong host or port? another service listens there); reconnecting (logged again each minute it lasts, and once Redis answers)',
    lasting: 'the server at REDIS_URL answers, not in the Redis protocol, for',
    end: 'Redis answers after',
  },
} as const;

/** ioredis' error for bytes that are not the Redis protocol: something answered, and it is not Redis (or not in plaintext). */
function notRedisProtocol(error: Error): boolean {
  return error.name === 'ParserError';
}

/**
 * One connection's outage in the log (OutageLog): its first failure at `warn`, a reminder each minute it lasts, and the
 * reconnect at `info`. Credentials Redis refuses are said to be that, not an unreachable Redis (a cause that changes during the
 * outage is logged at once, the first time: one flipping back and forth is named by the minute's reminder). Only the error's code or class — or the first word of Redis' refusal — is written: the
 * URL, and so a message quoting it, may carry a password.
 */
export class RedisOutageLog {
  private readonly log: OutageLog;
  /** The latest failure's cause (the outage's, while one lasts). */
  private cause: keyof typeof OUTAGE_WORDS = 'unreachable';
  /** The code or class the latest cause was logged with. */
  private code = '';
  /** The causes this outage has logged: a cause that comes back (one flipping at each attempt) waits for the reminder. */
  private readonly logged = new Set<keyof typeof OUTAGE_WORDS>();

  constructor(
    private readonly name: string,
    logger: Logger,
  ) {
    this.log = new OutageLog(logger);
  }

  /** The outage under way is Redis refusing the credentials. */
  get refusingCredentials(): boolean {
    return this.currentCause === 'credentials';
  }

  /** The cause of the outage under way; undefined when there is none. */
  get currentCause(): keyof typeof OUTAGE_WORDS | undefined {
    return this.log.ongoing ? this.cause : undefined;
  }

  /** The code or class the outage under way was logged with (`ECONNREFUSED`, `WRONGPASS`, …); undefined when there is none. */
  get currentCode(): string | undefined {
    return this.log.ongoing ? this.code : undefined;
  }

  failed(error: NodeJS.ErrnoException): void {
    // Commands given up while the outage lasts (ioredis' MaxRetriesPerRequestError), and writes meeting the socket a
    // non-Redis server closed after its answer, are its consequence, not a cause of their own.
    const consequence =
      this.log.ongoing &&
      (error.name === 'MaxRetriesPerRequestError' || (this.cause === 'protocol' && (error.code === 'EPIPE' || error.code === 'ECONNRESET')));
    const refused = refusedCredentials(error);
    const code = consequence ? this.code : (refused ?? error.code ?? error.name);
    const cause = consequence ? this.cause : refused ? 'credentials' : notRedisProtocol(error) ? 'protocol' : 'unreachable';
    this.code = code;
    this.cause = cause;
    if (!this.log.ongoing) this.logged.clear();
    const fresh = !this.logged.has(cause);
    this.logged.add(cause);
    this.log.failed(
      () => `${this.name}: ${code}: ${OUTAGE_WORDS[cause].first}`,
      ({ forMs, failures }) => `${this.name}: ${code}: ${OUTAGE_WORDS[cause].lasting} ${Math.round(forMs / 1000)} s (${attempts(failures)}); ${cause === 'credentials' ? 'retrying' : 'reconnecting'}`,
      fresh,
    );
  }

  answered(): void {
    this.log.ended(({ forMs, failures }) => `${this.name}: ${OUTAGE_WORDS[this.cause].end} ${Math.round(forMs / 1000)} s (${attempts(failures)})`);
  }
}

@Global()
@Module({ providers: [HostRedis], exports: [HostRedis] })
export class HostRedisModule {}

function attempts(n: number): string {
  return `${n} failed attempt${n === 1 ? '' : 's'}`;
}
