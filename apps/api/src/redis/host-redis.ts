import { Global, Inject, Injectable, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import { closeRedisConnection } from '@app/credentials';
import { Redis } from 'ioredis';
import { APP_CONFIG, AppConfig } from '../config/app.config';

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
  readonly enabled: boolean;
  readonly keyPrefix: string;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.enabled = config.redis !== undefined;
    this.keyPrefix = config.redis?.keyPrefix ?? 'cv:';
  }

  /** The shared command connection (created on first use). Throws when Redis is not configured. */
  get client(): Redis {
    this.commandClient ??= this.connect('commands');
    return this.commandClient;
  }

  /** A new connection for SUBSCRIBE; closed with the others at shutdown. */
  subscriber(name = 'subscriber'): Redis {
    return this.connect(name);
  }

  private connect(name: string): Redis {
    if (!this.config.redis) throw new Error('Redis is not configured (REDIS_URL is unset)');
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
  }
}

/** How long an outage goes on before it is logged again. */
const OUTAGE_REMINDER_MS = 60_000;

/**
 * One connection's outage in the log: its first failure at `warn`, a reminder each minute it lasts, and the reconnect
 * at `info`. Only the error's code or class is written: the URL, and so a message quoting it, may carry a password.
 */
export class RedisOutageLog {
  private since?: number;
  private lastLoggedAt = 0;
  private failures = 0;

  constructor(
    private readonly name: string,
    private readonly logger: Logger,
  ) {}

  failed(error: NodeJS.ErrnoException): void {
    const now = Date.now();
    const code = error.code ?? error.name;
    this.failures++;
    if (this.since === undefined) {
      this.since = now;
      this.lastLoggedAt = now;
      this.logger.warn(`${this.name}: ${code}: Redis does not answer; reconnecting (logged again each minute it lasts, and once it is back)`);
    } else if (now - this.lastLoggedAt >= OUTAGE_REMINDER_MS) {
      this.lastLoggedAt = now;
      this.logger.warn(`${this.name}: ${code}: Redis does not answer for ${Math.round((now - this.since) / 1000)} s (${attempts(this.failures)}); reconnecting`);
    }
  }

  answered(): void {
    if (this.since === undefined) return;
    this.logger.log(`${this.name}: Redis answers again after ${Math.round((Date.now() - this.since) / 1000)} s (${attempts(this.failures)})`);
    this.since = undefined;
    this.failures = 0;
  }
}

@Global()
@Module({ providers: [HostRedis], exports: [HostRedis] })
export class HostRedisModule {}

function attempts(n: number): string {
  return `${n} failed attempt${n === 1 ? '' : 's'}`;
}
