import type { KeyObject } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { type Clock, SharedLoads } from '@app/common';
import { callerLeftError, type KeyVaultKeysProvider, type VaultKey } from '@app/key-vault';
import type { ResolvedKeysOptions } from '../keys.options';
import type { KeyChangeFanOut } from './key-change-fan-out';

export interface CachedKey {
  key: VaultKey;
  at: number;
  /** The fan-out's `heardGeneration` when the key was read (0 without a fan-out); `undefined`: never trusted. */
  generation?: number;
  /** The public key as a node:crypto object, built on the first local verify. */
  publicKey?: KeyObject;
}

/**
 * Key versions (and which one is the latest) by vault name, fresh for `keyCacheTtlMs`, at most
 * `maxCachedKeys` (the oldest entry goes first). Concurrent cold lookups of one key share one vault call
 * (`SharedLoads`): a caller who leaves stops waiting (CANCELLED), and the call is aborted once all have left.
 *
 * With a `KeyChangeFanOut`, other replicas' announced changes drop the key here at once, and an entry is trusted only
 * under the fan-out generation it was read in: while the fan-out is not heard (`heardGeneration` undefined) nothing
 * cached is used — every lookup is its own vault read, neither shared nor kept — and after a gap what was cached before
 * it is read again.
 */
export class KeyCache {
  private readonly logger = new Logger('KeyCache');
  private readonly cache = new Map<string, CachedKey>();
  private readonly latest = new Map<string, { version: string; at: number; generation?: number }>();
  private readonly inflight = new SharedLoads<CachedKey>(() => callerLeftError('getKey', 'shared'));
  private readonly unlisten?: () => void;

  constructor(
    private readonly vault: KeyVaultKeysProvider,
    private readonly clock: Clock,
    private readonly options: ResolvedKeysOptions,
    private readonly fanOut?: KeyChangeFanOut | null,
  ) {
    this.unlisten = fanOut?.listen((vaultNames) => {
      for (const vaultName of vaultNames) this.forget(vaultName);
    });
  }

  /** Stops hearing the fan-out. */
  close(): void {
    this.unlisten?.();
  }

  /** The generation entries read now are cached under (0 without a fan-out); `undefined`: nothing cached is trusted. */
  generation(): number | undefined {
    return this.fanOut ? this.fanOut.heardGeneration() : 0;
  }

  /**
   * The key version (the latest when `version` is omitted), from the cache while it is fresh unless `refresh`, else
   * from the vault. `caller.signal` is read on a miss only (the host makes it when first asked).
   */
  async get(vaultName: string, version: string | undefined, refresh = false, caller?: { readonly signal?: AbortSignal }): Promise<CachedKey> {
    const generation = this.generation();
    if (generation === undefined) {
      // Changes elsewhere may go unheard: the vault's answer, for this caller alone (a shared read could have started
      // before a change another replica has already acknowledged), and not kept.
      const key = await this.vault.getKey(vaultName, version, { signal: caller?.signal });
      return { key, at: this.clock.now().getTime() };
    }
    const id = vaultName.toLowerCase();
    const now = this.clock.now().getTime();
    const fresh = (e: { at: number; generation?: number }) => !refresh && e.generation === generation && now - e.at < this.options.keyCacheTtlMs;
    const isLatest = version === undefined;
    if (version === undefined) {
      const l = this.latest.get(id);
      if (l && fresh(l)) version = l.version;
    }
    if (version !== undefined) {
      const hit = this.cache.get(`${id}/${version.toLowerCase()}`);
      if (hit && fresh(hit)) return hit;
    }
    const flight = `${id}/${(version ?? '').toLowerCase()}/${refresh}/${generation}`;
    return this.inflight.join(
      flight,
      async (load) => {
        const key = await this.vault.getKey(vaultName, version, { signal: load.signal });
        // Detached by `forget` meanwhile (the key was deleted or changed): answer it, but do not cache it again.
        return load.current ? this.remember(key, isLatest, generation) : { key, at: this.clock.now().getTime() };
      },
      caller?.signal,
    );
  }

  /** Caches what the vault answered, under `generation`: the fan-out's when the read began (default: now). */
  remember(key: VaultKey, isLatest: boolean, generation = this.generation()): CachedKey {
    const vaultName = key.properties.name.toLowerCase();
    const id = `${vaultName}/${key.properties.version.toLowerCase()}`;
    const now = this.clock.now().getTime();
    if (this.cache.size >= this.options.maxCachedKeys && !this.cache.has(id)) this.cache.delete(this.cache.keys().next().value as string);
    const entry: CachedKey = { key, at: now, generation };
    this.cache.set(id, entry);
    if (isLatest) this.latest.set(vaultName, { version: key.properties.version, at: now, generation });
    return entry;
  }

  /** After this replica changed the key in the vault: caches the vault's answer, then tells the other replicas (`announce`). */
  async rememberChanged(vaultName: string, key: VaultKey, isLatest: boolean): Promise<void> {
    this.remember(key, isLatest);
    await this.announce(vaultName);
  }

  /** After this replica deleted or purged the key in the vault: forgets it, then tells the other replicas (`announce`). */
  async forgetChanged(vaultName: string): Promise<void> {
    this.forget(vaultName);
    await this.announce(vaultName);
  }

  /**
   * Every other replica drops the key, through the fan-out when the host bound one. One that could not be sent is not the
   * change's failure (the vault has it): it is logged, the fan-out sends it again once it is heard again, and until
   * then other replicas may use their copy for up to `keyCacheTtlMs`.
   */
  private async announce(vaultName: string): Promise<void> {
    if (!this.fanOut) return;
    await this.fanOut.announce([vaultName]).catch((e: unknown) => {
      const why = (e as NodeJS.ErrnoException)?.code ?? (e as Error)?.name ?? 'error';
      this.logger.warn(`a key change could not be announced to the other replicas (${why}): they may use their cached copy for up to keyCacheTtlMs (${this.options.keyCacheTtlMs} ms)`);
    });
  }

  /** Drops the key's versions, and detaches lookups of it in flight: what they bring back may predate the change. */
  forget(vaultName: string): void {
    const prefix = `${vaultName.toLowerCase()}/`;
    for (const id of this.cache.keys()) if (id.startsWith(prefix)) this.cache.delete(id);
    for (const flight of [...this.inflight.keys()]) if (flight.startsWith(prefix)) this.inflight.forget(flight);
    this.latest.delete(vaultName.toLowerCase());
  }

  clear(): void {
    this.cache.clear();
    this.latest.clear();
    this.inflight.forgetAll();
  }
}
