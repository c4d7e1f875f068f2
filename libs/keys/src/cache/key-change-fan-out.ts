/**
 * How the key cache hears of key changes made through other replicas — a port (the abstract class is the DI token),
 * bound by the host to a fan-out it already runs (the reference host: the credentials cache's invalidation bus, Redis
 * pub/sub or PostgreSQL NOTIFY, with its heartbeats). Unbound (one process, or no fan-out), a change made on another
 * replica is seen within `keyCacheTtlMs`.
 *
 * An implementation must be cheap to ask `heardGeneration` (it is read before every cached use, on the warm path), and
 * must change its answer after any gap in hearing, even one that has ended: the key cache trusts an entry only under
 * the generation it was read in.
 */
export abstract class KeyChangeFanOut {
  /**
   * A number that stays the same for as long as this replica hears every other replica's announcements without a gap;
   * `undefined` while it may miss some — then the key cache trusts nothing it holds and reads each key from the vault.
   */
  abstract heardGeneration(): number | undefined;
  /** Tells every other replica that these vault keys changed (they drop them); rejects when it could not be sent. */
  abstract announce(vaultNames: readonly string[]): Promise<void>;
  /** Calls `listener` with the vault key names other replicas announce; returns what stops it. */
  abstract listen(listener: (vaultNames: readonly string[]) => void): () => void;
}
