import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { Logger, Module, OnApplicationBootstrap, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { Gauge } from 'prom-client';
import { describeError, parsePostgresUrl, withTimeout } from '@app/common';
import { CredentialCache, redisCommandRefusal } from '@app/credentials';
import { APP_CONFIG, type AppConfig } from '../config/app.config';
import { registerHostMetrics } from '../metrics/host-metrics';
import { EmbeddedVault } from '../vault/embedded-vault';
import { EmbeddedVaultModule } from '../vault/vault.module';
import { HostRedis } from './host-redis';

/** Optional provider of `RedisPrefixGuardOptions` (tests shorten the heartbeat). */
export const REDIS_PREFIX_GUARD_OPTIONS = Symbol('REDIS_PREFIX_GUARD_OPTIONS');

export interface RedisPrefixGuardOptions {
  /** How often a replica records its prefix; a prefix not recorded for 3 intervals is gone. @default 10000 */
  intervalMs?: number;
}

/** What this replica knows of the deployment's prefixes, from its last heartbeat. */
export interface RedisPrefixStatus {
  prefix: string;
  /** Other REDIS_KEY_PREFIX values live for the same database and vault. */
  otherPrefixes: string[];
  /** `newcomer`: another prefix was live before this one (readiness fails); `established`: this one was first. */
  role: 'alone' | 'established' | 'newcomer';
  checkedAt: Date | null;
}

/** Where the prefixes are recorded: outside every prefix, so replicas that disagree on it still meet there. */
const KEY_NAMESPACE = 'credential-vault:deployment:';

/**
 * One round trip: this prefix's field becomes `<since>:<now>` (since: when the prefix was first seen live, kept
 * while it stays live), fields not renewed within the TTL are dropped, and the other live ones are returned with
 * their `since`. Redis's clock: replicas' clocks may differ.
 */
const HEARTBEAT_SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local function parse(v)
  local since, seen = string.match(v or '', '^(%d+):(%d+)$')
  if since and tonumber(seen) + ttl > now then return since end
  return nil
end
local since = parse(redis.call('HGET', KEYS[1], ARGV[1])) or tostring(now)
redis.call('HSET', KEYS[1], ARGV[1], since .. ':' .. now)
local others = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then
    local s = parse(all[i + 1])
    if s then table.insert(others, all[i]); table.insert(others, s) else redis.call('HDEL', KEYS[1], all[i]) end
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
return { since, others }
`;

/**
 * Replicas of one deployment (one database and one vault) with different `REDIS_KEY_PREFIX` values share
 * no cache evictions: each would serve values the others changed or revoked. Every replica records its prefix
 * under a fixed key named by a hash of the deployment's identity (database location and vault URL, never
 * a credential) on a heartbeat, and learns the other live prefixes there — never on a request's path. While
 * it knows of another, it tells the credential cache, which then serves nothing cached (every read goes to
 * the store); only a heartbeat that answers again lifts that (fail closed while Redis does not answer).
 */
export class RedisPrefixGuard implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('RedisPrefix');
  private readonly intervalMs: number;
  private timer?: NodeJS.Timeout;
  private state: RedisPrefixStatus;
  private lastSuccess = 0;
  private failing = false;
  private wasReady = false;
  /** What the cache was last told (`setUnheardReplicas`). */
  private unheard?: string;

  constructor(
    private readonly redis: HostRedis,
    /** `deploymentIdentity(config, vaultUrl)`. */
    readonly identity: string,
    options: RedisPrefixGuardOptions = {},
    /** The credential cache to stop serving from while another prefix is live (absent: only readiness, log and metric). */
    private readonly cache?: Pick<CredentialCache, 'setUnheardReplicas'>,
  ) {
    this.intervalMs = options.intervalMs ?? 10_000;
    this.state = { prefix: redis.keyPrefix, otherPrefixes: [], role: 'alone', checkedAt: null };
  }

  get enabled(): boolean {
    return this.redis.enabled;
  }

  status(): RedisPrefixStatus {
    return { ...this.state, otherPrefixes: [...this.state.otherPrefixes] };
  }

  onModuleInit(): void {
    const conflicts = () => this.state.otherPrefixes.length;
    registerHostMetrics([
      new Gauge({
        name: 'credential_vault_redis_prefix_conflicts',
        help: 'Other REDIS_KEY_PREFIX values live for this deployment (same database and vault): replicas that do not hear each other’s cache evictions',
        registers: [],
        collect() {
          this.set(conflicts());
        },
      }),
    ]);
  }

  /** The first heartbeat before the host serves: a newcomer's readiness fails from its first probe. */
  async onApplicationBootstrap(): Promise<void> {
    if (!this.enabled) return;
    await this.beat();
    this.timer = setInterval(() => void this.beat(), this.intervalMs).unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Records this prefix and reads the others (the timer calls it; tests may too). Never throws. */
  async beat(): Promise<void> {
    try {
      const ttlMs = 3 * this.intervalMs;
      const [since, flat] = (await withTimeout(this.redis.client.eval(HEARTBEAT_SCRIPT, 1, KEY_NAMESPACE + this.identity, this.redis.keyPrefix, String(ttlMs)), 2000)) as [string, string[]];
      const others: Array<{ prefix: string; since: number }> = [];
      for (let i = 0; i < flat.length; i += 2) others.push({ prefix: flat[i], since: Number(flat[i + 1]) });
      // The prefix live first keeps serving; a tie goes to the smaller prefix, so both sides agree.
      const first = (o: { prefix: string; since: number }) => o.since < Number(since) || (o.since === Number(since) && o.prefix < this.redis.keyPrefix);
      // Once ready, a replica stays in: after Redis lost the key, the later prefix may be recorded again first.
      const role = others.length === 0 ? 'alone' : others.some(first) && !this.wasReady ? 'newcomer' : 'established';
      this.wasReady ||= role !== 'newcomer';
      this.report({ prefix: this.redis.keyPrefix, otherPrefixes: others.map((o) => o.prefix).sort(), role, checkedAt: new Date() });
      this.tellCache();
      this.lastSuccess = Date.now();
      this.failing = false;
    } catch (e) {
      // The connection's outage first: a command given up while it retries says nothing of why.
      const why = this.redis.outage ?? redisCommandRefusal(e) ?? describeError(e);
      if (!this.failing) this.logger.warn(`could not check the deployment's other REDIS_KEY_PREFIX values: ${why}`);
      this.failing = true;
      // Not heard for longer than a prefix lives: what was seen is no longer known.
      if (Date.now() - this.lastSuccess > 3 * this.intervalMs) this.report({ ...this.state, otherPrefixes: [], role: 'alone' });
    }
  }

  /** From a heartbeat that answered only: one that failed leaves the cache as it was (readiness forgets, the cache does not). */
  private tellCache(): void {
    const others = this.state.otherPrefixes;
    const reason = others.length === 0 ? undefined : `REDIS_KEY_PREFIX "${others.join('", "')}" is live for this deployment beside "${this.state.prefix}": its cache evictions are not heard here`;
    if (reason === this.unheard) return;
    this.unheard = reason;
    this.cache?.setUnheardReplicas(reason);
  }

  private report(next: RedisPrefixStatus): void {
    const was = this.state.otherPrefixes.join(' ');
    this.state = next;
    const now = next.otherPrefixes.join(' ');
    if (now === was) return;
    if (next.otherPrefixes.length === 0) {
      this.logger.log(`no other REDIS_KEY_PREFIX is live for this deployment any more (this replica's: "${next.prefix}")`);
      return;
    }
    this.logger.error(
      `REDIS_KEY_PREFIX "${next.otherPrefixes.join('", "')}" is live for this deployment (same database and vault) beside this replica's "${next.prefix}": ` +
        `replicas with different prefixes do not hear each other's cache evictions and serve values changed or revoked elsewhere. ` +
        (next.role === 'newcomer' ? 'This replica came later: readiness fails until one prefix is left. ' : 'This replica came first: it stays ready, degraded. ') +
        'Give every replica the same REDIS_KEY_PREFIX (docs/OPERATIONS.md, CredentialVaultRedisPrefixConflict)',
    );
  }
}

/** A hash naming the deployment: the database's location (no user or password) and the vault's URL. */
export function deploymentIdentity(config: AppConfig, vaultUrl: string): string {
  const db = config.database;
  let database: string;
  if (db.type === 'postgres') {
    const { url, hostname } = parsePostgresUrl(db.url)!;
    database = `postgres:${hostname.toLowerCase()}:${url.port || '5432'}${url.pathname}:${db.schema ?? 'public'}`;
  } else {
    // One machine's file: the same path elsewhere is another deployment.
    database = `sqlite:${hostname()}:${resolve(db.path)}`;
  }
  const vault = vaultUrl.toLowerCase().replace(/\/+$/, '');
  return createHash('sha256').update(JSON.stringify([database, vault])).digest('base64url').slice(0, 32);
}

/** The guard, named by the vault this host really uses (the embedded one's URL is known once it runs). */
@Module({
  imports: [EmbeddedVaultModule],
  providers: [
    {
      provide: RedisPrefixGuard,
      inject: [HostRedis, APP_CONFIG, EmbeddedVault, { token: REDIS_PREFIX_GUARD_OPTIONS, optional: true }, { token: CredentialCache, optional: true }],
      useFactory: (redis: HostRedis, config: AppConfig, embedded: EmbeddedVault, options?: RedisPrefixGuardOptions, cache?: CredentialCache) =>
        new RedisPrefixGuard(redis, deploymentIdentity(config, config.keyVault.mode === 'embedded' ? embedded.emulator!.vaultUrl : config.keyVault.url), options, cache),
    },
  ],
  exports: [RedisPrefixGuard],
})
export class RedisPrefixModule {}
