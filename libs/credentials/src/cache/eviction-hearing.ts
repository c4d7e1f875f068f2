import { Logger } from '@nestjs/common';
import { type CacheInvalidationBus, publishedAt } from './invalidation-bus';
import { redisCommandRefusal } from './redis-connection';
import type { InvalidationLiveness } from './invalidation-liveness';

/** What hearing does to the tiers of the cache it guards. */
export interface HearingTiers {
  /** Empties the in-process tier; answers how many entries it held (for the log). */
  dropLocal(): number;
  /** Deletes this deployment's shared-tier entries; absent without a shared tier. */
  emptyShared?: () => Promise<void>;
  /** Evictions are heard again after a gap: those that could not be sent meanwhile are sent now. */
  resumed(): void;
}

/**
 * Whether this replica hears every replica's evictions, kept apart from the tiered cache that asks it before serving
 * anything cached (the cache reads as its two tiers; this is the state machine that decides when they may be used):
 * the bus's connection, the heartbeats sent and heard (`InvalidationLiveness`), the shared tier emptied after each
 * (re)connect before anything is served again, and `setUnheardReplicas`. Logs under the cache's own context.
 */
export class EvictionHearing {
  private readonly logger = new Logger('CredentialCache');
  /** A heartbeat was heard within `lostAfterMs` (and the shared tier was emptied since the bus last connected). */
  private heardLately = false;
  private heardAt = 0;
  /** The last heartbeat heard before this replica stopped hearing them (the cache dropped), or its start if it heard none: logged when one is heard. */
  private lostSince?: { at: number; since: 'the last one' | 'start' };
  /** The shared tier holds nothing from before the bus last (re)connected (see `busHealth`). */
  private sharedSynced: boolean;
  private syncing = false;
  private stopping = false;
  private heartbeat?: NodeJS.Timeout;
  /** Why some replicas of the deployment cannot be heard (`setUnheardReplicas`): nothing cached is served meanwhile. */
  private unheard?: string;
  private readonly liveWaiters: Array<() => void> = [];
  /** Counts the periods of hearing: a new one begins each time a heartbeat is heard after a gap (`generation`). */
  private hearingPeriod = 0;
  /** Redis refused the last heartbeat for lack of permission (its user may not PUBLISH): said with each line about none heard. */
  private heartbeatRefused?: string;
  /** Times hearing was lost, by reason (stats). */
  lost = { disconnected: 0, heartbeat: 0 };

  constructor(
    private readonly bus: CacheInvalidationBus,
    private readonly instanceId: string,
    private readonly liveness: InvalidationLiveness,
    private readonly tiers: HearingTiers,
  ) {
    this.sharedSynced = !tiers.emptyShared;
  }

  /**
   * Evictions are heard: the bus is connected, a heartbeat came through recently, and no replica is known to
   * announce its evictions elsewhere. Otherwise nothing cached is served.
   */
  get hearing(): boolean {
    return this.bus.healthy && this.heardLately && this.unheard === undefined;
  }

  /** A heartbeat was heard within `lostAfterMs` (whatever `setUnheardReplicas` says). */
  get live(): boolean {
    return this.heardLately;
  }

  get unheardReplicas(): string | undefined {
    return this.unheard;
  }

  /** The current period of hearing, `undefined` while not hearing (`ReplicaEvictions.heardGeneration`). */
  generation(): number | undefined {
    return this.hearing ? this.hearingPeriod : undefined;
  }

  /** Why nothing cached is served, or `undefined` while evictions are heard. */
  whyNotHearing(): string | undefined {
    if (!this.bus.healthy) return 'evictions cannot be received: reads bypass the cache';
    if (this.unheard !== undefined) return `${this.unheard}: reads bypass the cache`;
    if (!this.heardLately) return `no invalidation heartbeat heard within ${this.liveness.lostAfterMs} ms${this.refusedNote()}: reads bypass the cache`;
    return undefined;
  }

  /** Starts the heartbeats (the bus already started) and waits, bounded, for the first one to come back. */
  async start(): Promise<void> {
    this.heartbeat = setInterval(() => this.beat(), this.liveness.intervalMs);
    this.heartbeat.unref();
    // Ready to cache once its first heartbeat is back (bounded: until then reads just bypass the cache).
    if (this.bus.healthy && !this.heardLately) {
      const startedAt = Date.now();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.liveWaiters.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, this.liveness.lostAfterMs))),
      ]);
      clearTimeout(timer);
      // Never heard, so beat() has no drop to log: without this line nothing says why every read goes to the store.
      if (!this.heardLately && this.bus.healthy) {
        this.lostSince = { at: startedAt, since: 'start' };
        this.logger.warn(`no cache invalidation heartbeat heard within ${this.liveness.lostAfterMs} ms of start${this.refusedNote()}: reads bypass the cache until one is heard`);
      }
    }
  }

  /** Before the bus stops: it reports itself down as it does, which is not an outage to warn about. */
  stop(): void {
    clearInterval(this.heartbeat);
    this.stopping = true;
  }

  resetStats(): void {
    this.lost = { disconnected: 0, heartbeat: 0 };
  }

  /**
   * Starting: L1 is dropped and reads bypass the cache. Ending: as after a lost heartbeat — L2 (which the unheard
   * replicas' changes never reached) is emptied, then a heartbeat is awaited, then L1 is emptied and serves again.
   */
  setUnheardReplicas(reason: string | undefined): void {
    const was = this.unheard;
    this.unheard = reason;
    if (reason !== undefined) {
      const entries = this.tiers.dropLocal();
      if (was === undefined) this.logger.warn(`${reason}: ${entries} cached entries dropped, reads bypass the cache until every replica is heard`);
      return;
    }
    if (was === undefined) return;
    this.heardLately = false;
    this.sharedSynced = !this.tiers.emptyShared;
    this.logger.log(`every replica is heard again: the cache serves again once ${this.tiers.emptyShared ? 'the shared tier is emptied and ' : ''}a heartbeat is heard`);
    if (this.bus.healthy) this.syncShared();
  }

  /** The bus connected or disconnected. */
  busHealth(healthy: boolean): void {
    // Either way L1 may now hold what a missed eviction should have removed.
    this.tiers.dropLocal();
    this.heardLately = false;
    if (!healthy) {
      this.sharedSynced = !this.tiers.emptyShared;
      this.lostSince = undefined; // no longer a heartbeat matter: the connection itself is gone
      if (!this.stopping) {
        this.lost.disconnected++;
        this.logger.warn('cache invalidations cannot be received (connection lost): cached entries dropped, reads bypass the cache until they can');
      }
      return;
    }
    this.logger.log(`cache invalidations connected (${this.bus.transport})`);
    this.syncShared(); // then a heartbeat: once heard, the evictions that could not be sent are sent (heard())
  }

  /** Any message of the bus (a heartbeat, an eviction, its own): the bus is heard. */
  heard(): void {
    this.heardAt = Date.now();
    if (this.heardLately || !this.bus.healthy || !this.sharedSynced) return;
    this.heardLately = true;
    this.hearingPeriod++;
    this.tiers.dropLocal();
    if (this.lostSince !== undefined) {
      // How long the silence lasted tells a slow bus (just past the threshold) from an outage.
      this.logger.log(`cache invalidation heartbeat heard again, ${Math.round(this.heardAt - this.lostSince.at)} ms after ${this.lostSince.since}: serving from the cache again`);
      this.lostSince = undefined;
    }
    for (const resolve of this.liveWaiters.splice(0)) resolve();
    this.tiers.resumed();
  }

  /**
   * A Redis that restarted with its data (AOF, RDB, a failover) may hold entries evicted while this
   * replica could not reach it: they are deleted before any is served again (also at start: a replica
   * cannot know what happened before it). Until then, and until a heartbeat is heard, nothing cached.
   */
  private syncShared(): void {
    if (this.sharedSynced) return void this.beat();
    if (this.syncing) return;
    this.syncing = true;
    void (this.tiers.emptyShared?.() ?? Promise.resolve())
      .then(
        () => {
          this.sharedSynced = this.bus.healthy;
          this.beat();
        },
        (e: Error) => {
          this.logger.warn(`could not empty the shared cache after connecting (${e.name}): reads bypass the cache until it is`);
        },
      )
      .finally(() => (this.syncing = false));
  }

  /** A heartbeat out, and the liveness check: nothing heard for `lostAfterMs` stops serving from the cache. */
  private beat(): void {
    if (this.bus.healthy) {
      if (!this.sharedSynced) this.syncShared(); // the last attempt to empty L2 failed: again
      else
        void this.bus.heartbeat({ o: this.instanceId, t: publishedAt() }).then(
          () => (this.heartbeatRefused = undefined),
          (e: unknown) => (this.heartbeatRefused = redisCommandRefusal(e)),
        );
    }
    const silentMs = Date.now() - this.heardAt;
    if (this.heardLately && silentMs > this.liveness.lostAfterMs) {
      this.heardLately = false;
      const entries = this.tiers.dropLocal();
      // Evictions sent meanwhile may not have reached Redis either: L2 is emptied before serving again.
      this.sharedSynced = !this.tiers.emptyShared;
      this.lostSince = { at: this.heardAt, since: 'the last one' };
      this.lost.heartbeat++;
      this.logger.warn(
        `no cache invalidation heartbeat heard for ${Math.round(silentMs)} ms (lost after ${this.liveness.lostAfterMs} ms)${this.refusedNote()}: ${entries} cached entries dropped, reads bypass the cache until one is heard`,
      );
    }
  }

  /** ` (Redis refused PUBLISH for lack of permission (NOPERM))` when that is why no heartbeat is heard; else nothing. */
  private refusedNote(): string {
    return this.heartbeatRefused ? ` (${this.heartbeatRefused})` : '';
  }
}
