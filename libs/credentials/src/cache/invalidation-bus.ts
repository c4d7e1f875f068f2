import { createHash } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { withTimeout } from '@app/common';
import { closeRedisConnection, type CacheRedisClient, type CacheRedisSubscriber } from './redis-connection';

/** One eviction as it travels between replicas: cache keys (tenant/credential ids), never a value. */
export interface InvalidationMessage {
  /** The publishing instance (it ignores its own messages: it already evicted locally). */
  o: string;
  /** Keys to drop. */
  k?: string[];
  /** A key prefix to drop (a tenant). */
  p?: string;
  /**
   * Whose keys `k` are: absent, the credential cache's; else another cache of the replicas that shares the fan-out
   * (`CredentialCache.replicaEvictions`, e.g. `keys`: the keys lib's key cache). Never applied to the credential cache.
   */
  s?: string;
  /** When it was published (epoch ms, fractional): receivers measure propagation with it. */
  t: number;
}

/** A message's `t`: wall-clock milliseconds with sub-millisecond precision, comparable across processes of one machine. */
export function publishedAt(): number {
  return performance.timeOrigin + performance.now();
}

export type InvalidationListener = (message: InvalidationMessage) => void;
/** `true` once messages are received; `false` while they may be missed (the cache then stops caching). */
export type HealthListener = (healthy: boolean) => void;

/**
 * Carries evictions to every replica. Delivery is best effort while connected (Redis pub/sub,
 * PostgreSQL NOTIFY): a replica that is not connected cannot rely on its L1 and says so through
 * `healthy`; the outbox re-publishes every change at least once.
 */
export abstract class CacheInvalidationBus {
  abstract readonly transport: 'redis' | 'postgres';
  abstract readonly healthy: boolean;
  abstract start(onMessage: InvalidationListener, onHealth: HealthListener): Promise<void>;
  abstract publish(message: InvalidationMessage): Promise<void>;
  /** A heartbeat (a message with neither keys nor prefix): what proves that this replica hears what is published now. */
  heartbeat(message: InvalidationMessage): Promise<void> {
    return this.publish(message);
  }
  abstract stop(): Promise<void>;
}

function parse(text: string): InvalidationMessage | null {
  try {
    const m = JSON.parse(text) as InvalidationMessage;
    if (typeof m?.o !== 'string' || typeof m.t !== 'number') return null;
    if (m.k !== undefined && !(Array.isArray(m.k) && m.k.every((k) => typeof k === 'string'))) return null;
    if (m.p !== undefined && typeof m.p !== 'string') return null;
    if (m.s !== undefined && typeof m.s !== 'string') return null;
    return m;
  } catch {
    return null;
  }
}

/** Redis pub/sub on `<keyPrefix>invalidate`, over a connection of its own (a subscribed connection runs no other command). */
export class RedisInvalidationBus extends CacheInvalidationBus {
  readonly transport = 'redis' as const;
  private readonly logger = new Logger('CredentialCache');
  readonly channel: string;
  private sub?: CacheRedisSubscriber;
  private state = false;
  private stopped = false;
  private onHealth: HealthListener = () => undefined;

  constructor(
    private readonly client: CacheRedisClient,
    private readonly subscriberFactory: () => CacheRedisSubscriber,
    keyPrefix: string,
    private readonly timeoutMs: number,
  ) {
    super();
    this.channel = `${keyPrefix}invalidate`;
  }

  get healthy(): boolean {
    return this.state;
  }

  async start(onMessage: InvalidationListener, onHealth: HealthListener): Promise<void> {
    this.onHealth = onHealth;
    const sub = (this.sub = this.subscriberFactory());
    sub.on('message', (channel: string, text: string) => {
      if (channel !== this.channel || this.stopped) return;
      const m = parse(text);
      if (m) onMessage(m);
    });
    // Lost connection: messages may be missed until the subscription is confirmed again.
    sub.on('close', () => this.setHealthy(false));
    sub.on('ready', () => void this.subscribe());
    await this.subscribe();
  }

  async publish(message: InvalidationMessage): Promise<void> {
    await withTimeout(this.client.publish(this.channel, JSON.stringify(message)), this.timeoutMs);
  }

  /**
   * Stops listening and closes the subscriber connection (its subscription ends with it): the bus made it (the
   * host's factory), so no one else holds it to close. Resolves once its socket has closed, so the app leaves none
   * behind; bounded by the bus's timeout: with Redis down or stalled a QUIT is never answered (or queues forever
   * under `maxRetriesPerRequest: null`), and the app's close must not wait for it.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.setHealthy(false);
    const sub = this.sub;
    if (!sub) return;
    await closeRedisConnection(sub, this.timeoutMs);
  }

  private async subscribe(): Promise<void> {
    if (this.stopped || !this.sub) return;
    try {
      await withTimeout(this.sub.subscribe(this.channel), Math.max(this.timeoutMs, 2000));
      this.setHealthy(this.sub.status === 'ready');
    } catch (e) {
      this.logger.warn(`invalidation channel not subscribed (${(e as NodeJS.ErrnoException).code ?? (e as Error).name}); reads bypass the cache until it is`);
      this.setHealthy(false);
    }
  }

  private setHealthy(healthy: boolean): void {
    if (this.stopped && healthy) return;
    if (this.state === healthy) return;
    this.state = healthy;
    this.onHealth(healthy);
  }
}

/** Structural view of a pg client (the lib does not import pg). */
interface PgListenClient {
  query(sql: string, params?: unknown[]): Promise<unknown>;
  on(event: 'notification', fn: (n: { channel: string; payload?: string }) => void): void;
  on(event: 'error' | 'end', fn: (e?: Error) => void): void;
  release(error?: Error | boolean): void;
}

/** How often the LISTEN connection must answer a query (see PostgresInvalidationBus). */
export const LISTEN_CHECK_MS = 5000;

/**
 * PostgreSQL LISTEN/NOTIFY, for deployments without Redis: one pooled connection held for LISTEN on a
 * channel named after the schema (a deployment), NOTIFY through the DataSource (heartbeats: on the LISTEN connection).
 *
 * The LISTEN connection runs no query of its own, so nothing would notice it stalled (a hung server, a stalled
 * proxy, a path that drops packets while TCP keepalive is still ACKed): notifications stop, the cache stops
 * serving, and it stayed so after PostgreSQL answered again on new connections. Every `LISTEN_CHECK_MS` it
 * must answer a `SELECT 1` within its wait, else it is closed and LISTEN starts again on a new one.
 */
export class PostgresInvalidationBus extends CacheInvalidationBus {
  readonly transport = 'postgres' as const;
  private readonly logger = new Logger('CredentialCache');
  readonly channel: string;
  private client?: PgListenClient;
  /** The last query sent on the LISTEN connection: the next waits for it (node-postgres deprecates queued queries). */
  private tail: Promise<unknown> = Promise.resolve();
  private state = false;
  private stopped = false;
  private retry?: NodeJS.Timeout;
  private check?: NodeJS.Timeout;
  private onMessage: InvalidationListener = () => undefined;
  private onHealth: HealthListener = () => undefined;

  constructor(
    private readonly dataSource: DataSource,
    keyPrefix: string,
    private readonly timeoutMs: number,
  ) {
    super();
    const schema = (dataSource.options as { schema?: string }).schema ?? 'public';
    // An identifier of ≤ 63 characters: a hash of what makes the deployment.
    this.channel = `cv_cache_${createHash('sha256').update(`${schema}\0${keyPrefix}`).digest('hex').slice(0, 24)}`;
  }

  get healthy(): boolean {
    return this.state;
  }

  async start(onMessage: InvalidationListener, onHealth: HealthListener): Promise<void> {
    this.onMessage = onMessage;
    this.onHealth = onHealth;
    await this.connect();
  }

  async publish(message: InvalidationMessage): Promise<void> {
    await withTimeout(this.dataSource.query('SELECT pg_notify($1, $2)', [this.channel, JSON.stringify(message)]), this.timeoutMs);
  }

  /**
   * Sent on the LISTEN connection, not through the pool: the heartbeat vouches for that connection (hearing our own,
   * we have heard everything committed before it), and a pool saturated by requests must not hold it back — under
   * load every replica would otherwise drop its cache at once and send its reads to the vault.
   */
  override async heartbeat(message: InvalidationMessage): Promise<void> {
    const client = this.client;
    if (!client) throw new Error('not listening for cache invalidations');
    await withTimeout(this.onListenConnection(client, 'SELECT pg_notify($1, $2)', [this.channel, JSON.stringify(message)]), this.timeoutMs);
  }

  /** One query at a time on the LISTEN connection (heartbeats and the answer check share it). */
  private onListenConnection(client: PgListenClient, sql: string, params?: unknown[]): Promise<unknown> {
    const send = () => client.query(sql, params);
    const run = this.tail.then(send, send);
    this.tail = run.catch(() => undefined);
    return run;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    clearTimeout(this.check);
    this.setHealthy(false);
    const client = this.client;
    this.client = undefined;
    if (client) {
      await client.query(`UNLISTEN "${this.channel}"`).catch(() => undefined);
      client.release();
    }
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    let client: PgListenClient | undefined;
    try {
      const pool = (this.dataSource.driver as unknown as { master: { connect(): Promise<PgListenClient> } }).master;
      client = await withTimeout(pool.connect(), Math.max(this.timeoutMs, 2000));
      client.on('notification', (n) => {
        if (n.channel !== this.channel || !n.payload) return;
        const m = parse(n.payload);
        if (m) this.onMessage(m);
      });
      const lost = (e?: Error) => this.lost(client!, e);
      client.on('error', lost);
      client.on('end', lost);
      await withTimeout(client.query(`LISTEN "${this.channel}"`), Math.max(this.timeoutMs, 2000));
      this.client = client;
      this.tail = Promise.resolve();
      this.setHealthy(true);
      this.scheduleCheck(client);
    } catch (e) {
      if (client) client.release(e as Error);
      this.logger.warn(`LISTEN for cache invalidations failed (${(e as Error).name}); reads bypass the cache until it works`);
      this.setHealthy(false);
      this.scheduleReconnect();
    }
  }

  private scheduleCheck(client: PgListenClient): void {
    this.check = setTimeout(() => void this.checkAnswers(client), LISTEN_CHECK_MS);
    this.check.unref();
  }

  private async checkAnswers(client: PgListenClient): Promise<void> {
    if (this.stopped || this.client !== client) return;
    try {
      await withTimeout(this.onListenConnection(client, 'SELECT 1'), Math.max(this.timeoutMs, 2000));
    } catch (e) {
      this.logger.warn(`the LISTEN connection for cache invalidations did not answer (${(e as NodeJS.ErrnoException).code ?? (e as Error).name}); listening again on a new one`);
      this.lost(client, e instanceof Error ? e : new Error(String(e)));
      return;
    }
    if (this.client === client) this.scheduleCheck(client);
  }

  private lost(client: PgListenClient, e?: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.setHealthy(false);
    try {
      client.release(e ?? true);
    } catch {
      // already released
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.connect();
    }, 1000);
    this.retry.unref();
  }

  private setHealthy(healthy: boolean): void {
    if (this.state === healthy) return;
    this.state = healthy;
    this.onHealth(healthy);
  }
}
