import { Injectable, Logger, OnApplicationShutdown, OnModuleDestroy, OnModuleInit, type Provider } from '@nestjs/common';
import { Clock, describeError, OutageLog, OutboxDeferredError, OutboxEvent, OutboxHandlerRegistrations, withTimeout } from '@app/common';
import { KeyVaultProvider } from '@app/key-vault';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import type { ResolvedCredentialsOptions } from '../credentials.options';
import { CredentialsConfigurationError } from '../errors/credential-errors';
import { cacheKey } from '../internal/credential-view';
import { CredentialsPersistence } from '../persistence/credentials-persistence';
import { CREDENTIAL_CHANGE_INTERNAL_PREFIX, credentialChangeOf, CredentialEvents } from '../events/credential-events';
import { CacheKeyring } from './cache-keyring';
import { CredentialCache } from './credential-cache';
import { CacheInvalidationBus, PostgresInvalidationBus, RedisInvalidationBus } from './invalidation-bus';
import { LruCredentialCache } from './lru-credential-cache';
import { redisCommandRefusal } from './redis-connection';
import { TieredCredentialCache } from './tiered-credential-cache';

/** Secret holding the shared tier's entry key: `<prefix>-cachekey` cannot collide with credential (`--`) or data-key (`-k--`, `-kh-`) names. */
export const cacheKeySecretName = (namePrefix: string) => `${namePrefix}-cachekey`;

/**
 * How long a generation mark (`g:`) lives: it has to outlast a load in flight, by far, not the entry it guards. A fill
 * needs the mark to hold exactly what its load read, so an expired one refuses it (missing = moved; a new one is
 * random), and an eviction deletes the entry with or without a mark. Expiring during a load costs that fill only —
 * and, in a rolling upgrade, lets a replica of a release that read a missing mark as '0' fill stale: minutes, far
 * beyond a vault read with its retries (~40 s by default). Was max(1 h, 2 × ttlMs): a key per credential read in that.
 */
const GENERATION_TTL_FLOOR_MS = 300_000;
const generationTtlMs = (lockMs: number, waitMs: number): number => Math.max(GENERATION_TTL_FLOOR_MS, 2 * (lockMs + waitMs));

/**
 * Binds `CredentialCache` from `cache.store` and `cache.invalidation`: the in-process LRU when neither
 * a shared tier nor fan-out applies (one process: exactly the cache of before), else the two-level cache.
 */
export const CREDENTIAL_CACHE_PROVIDER: Provider = {
  provide: CredentialCache,
  useFactory: (options: ResolvedCredentialsOptions, clock: Clock, persistence: CredentialsPersistence, vault: KeyVaultProvider): CredentialCache => {
    const { store, invalidation } = options.cache;
    const dataSource = persistence.runner.dataSource;
    const onPostgres = dataSource.options.type === 'postgres';
    const transport = invalidation === 'auto' ? (store.type === 'redis' ? 'redis' : onPostgres ? 'postgres' : 'none') : invalidation;
    if (transport === 'none' && store.type === 'memory') return new LruCredentialCache(options.cache, clock);
    if (transport === 'postgres' && !onPostgres) {
      throw new CredentialsConfigurationError("Invalid CredentialsModule options:\n  - cache.invalidation: 'postgres' needs a PostgreSQL DataSource");
    }
    if (transport === 'none') {
      // A shared L2 without fan-out would keep serving entries other replicas evicted from their L1 only.
      throw new CredentialsConfigurationError("Invalid CredentialsModule options:\n  - cache.invalidation: 'none' cannot be used with the redis store");
    }
    const timeoutMs = store.type === 'redis' ? store.operationTimeoutMs : 1000;
    const keyPrefix = store.type === 'redis' ? store.keyPrefix : 'cv:cache:';
    const bus: CacheInvalidationBus =
      transport === 'redis' && store.type === 'redis'
        ? new RedisInvalidationBus(store.client, store.subscriber, keyPrefix, timeoutMs)
        : new PostgresInvalidationBus(dataSource, keyPrefix, timeoutMs);
    const l2 =
      store.type === 'redis'
        ? {
            client: store.client,
            keyring: new CacheKeyring(vault, cacheKeySecretName(options.vault.namePrefix)),
            keyPrefix,
            lockMs: store.lockMs,
            waitMs: store.waitMs,
            pollMs: store.pollMs,
            operationTimeoutMs: store.operationTimeoutMs,
            generationTtlMs: generationTtlMs(store.lockMs, store.waitMs),
          }
        : undefined;
    return new TieredCredentialCache(options.cache, clock, bus, l2, Math.random, options.cache.heartbeat);
  },
  inject: [CREDENTIALS_RESOLVED_OPTIONS, CREDENTIALS_CLOCK, CredentialsPersistence, KeyVaultProvider],
};

/**
 * Starts the shared cache (bus subscription, cache key) and drives evictions from the outbox: every
 * committed `credential.*` change (`credentials.change.credential.*` under `emitEvents: false`) is delivered at least once (on whichever replica dispatches), and
 * its handler evicts the entry on every replica and in L2 — so a crash between commit and the
 * writer's fast-path eviction cannot leave a stale entry behind. Idempotent: evicting twice is harmless.
 * The in-process tier too: another process on the same SQLite file (the CLI: a revoke, a webhook secret
 * activated) writes events this host's dispatcher delivers, and only they tell this cache.
 * While evictions cannot be announced (Redis or the database's NOTIFY away) the events wait, deferred: this logs that
 * once per outage (OutageLog), where the dispatcher warned at each retry of each event.
 */
@Injectable()
export class CacheInvalidationRelay implements OnModuleInit, OnModuleDestroy, OnApplicationShutdown {
  private readonly logger = new Logger('CredentialCache');
  private readonly outboxRegistrations = new OutboxHandlerRegistrations();
  private readonly unannounced = new OutageLog(this.logger);

  constructor(
    private readonly cache: CredentialCache,
    private readonly persistence: CredentialsPersistence,
  ) {}

  async onModuleInit(): Promise<void> {
    const cache = this.cache;
    const evict = async (event: OutboxEvent): Promise<void> => {
      const credentialId = event.payload.credentialId;
      // `credential.stored` names a fresh id: nothing to evict.
      if (credentialChangeOf(event.name) === CredentialEvents.STORED || !event.tenantId || typeof credentialId !== 'string') return;
      try {
        await cache.evictEverywhere(cacheKey(event.tenantId, credentialId));
      } catch (e) {
        // Redis / PostgreSQL cannot take it: the outbox delivers the event again after its backoff, quietly.
        await this.evictionFailed(e);
        throw new OutboxDeferredError('the eviction could not be announced', { cause: e, code: describeError(e) });
      }
      this.unannounced.ended(({ forMs, failures }) => `cache evictions are announced again after ${Math.round(forMs / 1000)} s (${failedDeliveries(failures)})`);
    };
    // `credential.*`, and the same changes written under `emitEvents: false`.
    this.outboxRegistrations.register(this.persistence.handlers, ['credential.*', `${CREDENTIAL_CHANGE_INTERNAL_PREFIX}*`], evict);
    if (cache instanceof TieredCredentialCache) await cache.start();
  }

  /** The outage's first line, then one a minute at most: each says how many outbox events wait. */
  private async evictionFailed(e: unknown): Promise<void> {
    const waiting = this.unannounced.lineDue ? await this.waitingEvents() : '';
    const again = 'the outbox delivers them again with its backoff';
    this.unannounced.failed(
      () => `cache evictions cannot be announced to the other replicas (${redisCommandRefusal(e) ?? describeError(e)}): ${waiting}; ${again} (logged again each minute this lasts, and once one goes through)`,
      ({ forMs, failures }) => `cache evictions cannot be announced for ${Math.round(forMs / 1000)} s (${failedDeliveries(failures)}): ${waiting}; ${again}`,
    );
  }

  /** The outbox's undelivered events (every kind: an operator's backlog), in words; without the number when it cannot be read now. */
  private async waitingEvents(): Promise<string> {
    try {
      const { pending } = await withTimeout(this.persistence.outbox.backlog(), 1000);
      return `${pending} outbox event${pending === 1 ? ' waits' : 's wait'}`;
    } catch {
      return 'outbox events wait';
    }
  }

  onModuleDestroy(): void {
    this.outboxRegistrations.unregisterAll();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.cache instanceof TieredCredentialCache) await this.cache.stop().catch((e: Error) => this.logger.warn(`cache stop: ${e.name}`));
  }
}

function failedDeliveries(n: number): string {
  return `${n} failed deliver${n === 1 ? 'y' : 'ies'}`;
}
