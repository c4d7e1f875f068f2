import type { DataSource } from 'typeorm';
import type { ChainHead } from '../audit.repository';

/**
 * How long a remembered head is trusted. Under load every batch refreshes it; the bound keeps an
 * idle chain's head from outliving rows another replica appended and a prune then deleted (a prune
 * deletes a prefix only, so it can delete what follows our head only by deleting our recent head too).
 */
const MAX_AGE_MS = 10_000;

interface Entry {
  head?: ChainHead;
  at: number;
  /** Bumped by `forget`: a write that started before cannot remember a head afterwards. */
  version: number;
}

/** The cache's per-tenant versions, taken before a write. */
export type HeadVersions = ReadonlyMap<string, number>;

/**
 * Each chain's head as left by a write of THIS process that committed (PostgreSQL optimistic append).
 * It may be behind the database (another writer appended since: the optimistic insert then collides
 * on (tenant, sequence) and falls back to the locked path), never ahead: it learns only committed
 * rows, and forgets a chain when a caller's transaction appends to it (it may roll back) or a prune
 * deletes from it. One per DataSource, so every writer and prune on it share what they forget.
 */
export class ChainHeadCache {
  private static readonly byDataSource = new WeakMap<DataSource, ChainHeadCache>();
  private readonly entries = new Map<string, Entry>();

  static for(dataSource: DataSource): ChainHeadCache {
    let cache = ChainHeadCache.byDataSource.get(dataSource);
    if (!cache) {
      cache = new ChainHeadCache();
      ChainHeadCache.byDataSource.set(dataSource, cache);
    }
    return cache;
  }

  /** The current versions of `tenantIds`' entries: pass them to `remember` after the write commits. */
  versions(tenantIds: Iterable<string>): HeadVersions {
    const out = new Map<string, number>();
    for (const t of tenantIds) out.set(t, this.entries.get(t)?.version ?? 0);
    return out;
  }

  /** The fresh heads of ALL `tenantIds` with their versions, or undefined when any is unknown or stale. */
  lookup(tenantIds: string[], now = Date.now()): { heads: Map<string, ChainHead>; versions: HeadVersions } | undefined {
    const heads = new Map<string, ChainHead>();
    const versions = new Map<string, number>();
    for (const t of tenantIds) {
      const e = this.entries.get(t);
      if (!e?.head || now - e.at > MAX_AGE_MS) return undefined;
      heads.set(t, e.head);
      versions.set(t, e.version);
    }
    return { heads, versions };
  }

  /**
   * Learns the newest of `rows` per chain; call only once they are COMMITTED. Ignored for a chain
   * forgotten since `versions` was taken, and never moves a head back.
   */
  remember(rows: ReadonlyArray<{ tenantId: string; id: string; sequence: number; hash: string }>, versions: HeadVersions, now = Date.now()): void {
    for (const r of rows) {
      const version = versions.get(r.tenantId);
      if (version === undefined) continue;
      let e = this.entries.get(r.tenantId);
      if (!e) {
        if (version !== 0) continue;
        e = { at: now, version: 0 };
        this.entries.set(r.tenantId, e);
      }
      if (e.version !== version) continue;
      if (!e.head || e.head.sequence < r.sequence) {
        e.head = { id: r.id, sequence: r.sequence, hash: r.hash };
        e.at = now;
      } else if (e.head.sequence === r.sequence) {
        e.at = now;
      }
    }
  }

  /** Drops the heads of `tenantIds`, and makes writes already under way unable to store theirs. */
  forget(tenantIds: Iterable<string>): void {
    for (const t of tenantIds) {
      const e = this.entries.get(t);
      if (e) {
        e.head = undefined;
        e.version++;
      } else {
        this.entries.set(t, { at: 0, version: 1 });
      }
    }
  }
}
