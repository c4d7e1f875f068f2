import type { MigrationCheckpointEntity } from '../checkpoint/migration-checkpoint.entity';
import type { LegacyConnectionRow, LegacyCredentialSource, LegacyFilter } from '../sources/legacy-source';
import type { ConnectionMigrator } from './connection-migrator';
import type { DecryptedField, MigrationErrorEntry } from './migration.types';

/** One legacy row, decrypted and validated, with its checkpoint if an earlier run left one. */
export interface FeedItem {
  row: LegacyConnectionRow;
  checkpoint?: MigrationCheckpointEntity;
  fields: DecryptedField[];
  errors: MigrationErrorEntry[];
}

/**
 * Reads the source ahead of the groups (keyset pages of `batchSize`), decrypts each row and looks up
 * the page's checkpoints, so the next group's connections are ready when the current one commits.
 * `onReady` settles a row that needs no vault write and returns true; the others are queued, at most
 * about `highWater` of them. A source failure is kept and thrown to the consumer.
 */
export class LegacyFeed {
  private readonly queue: FeedItem[] = [];
  private finished = false;
  private stopped = false;
  private failure: { error: unknown } | undefined;
  private consumers: (() => void)[] = [];
  private wakeProducer?: () => void;

  constructor(
    private readonly source: LegacyCredentialSource,
    private readonly filter: LegacyFilter,
    private readonly batchSize: number,
    private readonly migrator: Pick<ConnectionMigrator, 'decrypt'>,
    private readonly findCheckpoints: (legacyIds: string[]) => Promise<Map<string, MigrationCheckpointEntity>>,
    private readonly o: { highWater: number; onReady: (item: FeedItem) => boolean },
  ) {}

  /** Reads until the source is exhausted, `stop()` or a failure. Never rejects: `waitForItems`/`result` throw. */
  async start(): Promise<void> {
    try {
      for (let after: string | undefined; !this.stopped; ) {
        while (this.queue.length >= this.o.highWater && !this.stopped) await new Promise<void>((r) => (this.wakeProducer = r));
        if (this.stopped) break;
        const rows = await this.source.page(this.filter, after, this.batchSize);
        if (!rows.length) break;
        after = rows[rows.length - 1].legacyId;
        const checkpoints = await this.findCheckpoints(rows.map((r) => r.legacyId));
        for (const row of rows) {
          const item: FeedItem = { row, checkpoint: checkpoints.get(row.legacyId), ...this.migrator.decrypt(row, this.source.columns) };
          if (!this.o.onReady(item)) this.queue.push(item);
        }
        this.wake();
      }
    } catch (error) {
      this.failure = { error };
    } finally {
      this.finished = true;
      this.wake();
    }
  }

  /**
   * Waits until a row that `accept`s is queued (true), or the source is exhausted with none queued, or `stop()` (false:
   * a stopped feed hands out nothing more, even what it had queued).
   */
  async waitForItems(accept: (item: FeedItem) => boolean = () => true): Promise<boolean> {
    while (!this.queue.some(accept) && !this.finished && !this.stopped) await new Promise<void>((r) => this.consumers.push(r));
    this.result();
    return !this.stopped && this.queue.some(accept);
  }

  /** Up to `n` queued rows that `accept` (asked in queue order, once per row taken), oldest first. */
  take(n: number, accept: (item: FeedItem) => boolean = () => true): FeedItem[] {
    const items: FeedItem[] = [];
    const rest: FeedItem[] = [];
    for (const i of this.queue) (items.length < n && accept(i) ? items : rest).push(i);
    this.queue.splice(0, this.queue.length, ...rest);
    this.wakeProducer?.();
    return items;
  }

  /** Wakes the consumers (a row they refused may be acceptable now). */
  nudge(): void {
    this.wake();
  }

  /** Throws the source's failure, if any. */
  result(): void {
    if (this.failure) throw this.failure.error;
  }

  stop(): void {
    this.stopped = true;
    this.wake();
  }

  private wake(): void {
    const consumers = this.consumers;
    const p = this.wakeProducer;
    this.consumers = [];
    this.wakeProducer = undefined;
    for (const c of consumers) c();
    p?.();
  }
}

