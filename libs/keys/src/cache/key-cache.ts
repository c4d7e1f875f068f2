import type { KeyObject } from 'node:crypto';
import { type Clock, SharedLoads } from '@app/common';
import { callerLeftError, type KeyVaultKeysProvider, type VaultKey } from '@app/key-vault';
import type { ResolvedKeysOptions } from '../keys.options';

export interface CachedKey {
  key: VaultKey;
  at: number;
  /** The public key as a node:crypto object, built on the first local verify. */
  publicKey?: KeyObject;
}

/**
 * Key versions (and which one is the latest) by vault name, fresh for `keyCacheTtlMs`, at most
 * `maxCachedKeys` (the oldest entry goes first). Concurrent cold lookups of one key share one vault call
 * (`SharedLoads`): a caller who leaves stops waiting (CANCELLED), and the call is aborted once all have left.
 */
export class KeyCache {
  private readonly cache = new Map<string, CachedKey>();
  private readonly latest = new Map<string, { version: string; at: number }>();
  private readonly inflight = new SharedLoads<CachedKey>(() => callerLeftError('getKey', 'shared'));

  constructor(
    private readonly vault: KeyVaultKeysProvider,
    private readonly clock: Clock,
    private readonly options: ResolvedKeysOptions,
  ) {}

  /**
   * The key version (the latest when `version` is omitted), from the cache while it is fresh unless `refresh`, else
   * from the vault. `caller.signal` is read on a miss only (the host makes it when first asked).
   */
  async get(vaultName: string, version: string | undefined, refresh = false, caller?: { readonly signal?: AbortSignal }): Promise<CachedKey> {
    const id = vaultName.toLowerCase();
    const now = this.clock.now().getTime();
    const fresh = (at: number) => !refresh && now - at < this.options.keyCacheTtlMs;
    const isLatest = version === undefined;
    if (version === undefined) {
      const l = this.latest.get(id);
      if (l && fresh(l.at)) version = l.version;
    }
    if (version !== undefined) {
      const hit = this.cache.get(`${id}/${version.toLowerCase()}`);
      if (hit && fresh(hit.at)) return hit;
    }
    const flight = `${id}/${(version ?? '').toLowerCase()}/${refresh}`;
    return this.inflight.join(
      flight,
      async (load) => {
        const key = await this.vault.getKey(vaultName, version, { signal: load.signal });
        // Detached by `forget` meanwhile (the key was deleted or changed): answer it, but do not cache it again.
        return load.current ? this.remember(key, isLatest) : { key, at: this.clock.now().getTime() };
      },
      caller?.signal,
    );
  }

  remember(key: VaultKey, isLatest: boolean): CachedKey {
    const vaultName = key.properties.name.toLowerCase();
    const id = `${vaultName}/${key.properties.version.toLowerCase()}`;
    const now = this.clock.now().getTime();
    if (this.cache.size >= this.options.maxCachedKeys && !this.cache.has(id)) this.cache.delete(this.cache.keys().next().value as string);
    const entry: CachedKey = { key, at: now };
    this.cache.set(id, entry);
    if (isLatest) this.latest.set(vaultName, { version: key.properties.version, at: now });
    return entry;
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
