import type { ReplicaEvictions } from './credential-cache';
import type { CacheInvalidationBus, InvalidationMessage } from './invalidation-bus';

/**
 * The tiered cache's eviction fan-out lent to another cache of the process (`CredentialCache.replicaEvictions()`):
 * that cache's announcements travel on the same bus under a scope of their own (`s`), published as they are (not
 * through L2, not counted as the credential cache's) and never touching credential entries. Announcements that could
 * not be published are kept and sent again once the fan-out is heard again (`resend`).
 */
export class LentEvictions implements ReplicaEvictions {
  /** Listeners of other caches, by scope. */
  private readonly listeners = new Map<string, Set<(keys: readonly string[]) => void>>();
  /** Announcements that could not be published, by scope. */
  private readonly unsent = new Map<string, Set<string>>();

  constructor(
    private readonly bus: Pick<CacheInvalidationBus, 'publish'>,
    private readonly instanceId: string,
    /** The lending cache's hearing generation (`ReplicaEvictions.heardGeneration`). */
    private readonly generation: () => number | undefined,
    /** Wall-clock milliseconds, as the lending cache stamps its own messages. */
    private readonly now: () => number,
  ) {}

  heardGeneration(): number | undefined {
    return this.generation();
  }

  async announce(scope: string, keys: readonly string[]): Promise<void> {
    try {
      await this.bus.publish({ o: this.instanceId, s: scope, k: [...keys], t: this.now() });
    } catch (e) {
      const unsent = this.unsent.get(scope) ?? new Set<string>();
      for (const key of keys) unsent.add(key);
      this.unsent.set(scope, unsent);
      throw e;
    }
  }

  listen(scope: string, listener: (keys: readonly string[]) => void): () => void {
    const set = this.listeners.get(scope) ?? new Set();
    this.listeners.set(scope, set.add(listener));
    return () => void set.delete(listener);
  }

  /** A message of the bus: false when it is the lending cache's own (no scope); a scoped one is handled here. */
  receive(message: InvalidationMessage): boolean {
    if (message.s === undefined) return false;
    if (message.o !== this.instanceId) for (const listener of this.listeners.get(message.s) ?? []) listener(message.k ?? []);
    return true;
  }

  /** The fan-out is heard again: publishes what could not be. */
  resend(): void {
    for (const [scope, keys] of [...this.unsent]) {
      this.unsent.delete(scope);
      this.announce(scope, [...keys]).catch(() => undefined);
    }
  }
}
