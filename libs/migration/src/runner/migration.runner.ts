import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { CommitNotDurableError, Outbox, TransactionRunner, type CredentialVaultError, type OutboxPayload } from '@app/common';
import { KeyVaultErrorCode } from '@app/key-vault';
import { MigrationCheckpointRepository } from '../checkpoint/migration-checkpoint.repository';
import { MigrationStoppedError, MigrationVaultRefusedError, MigrationVaultUnavailableError } from '../errors/migration.errors';
import { MIGRATION_RESOLVED_OPTIONS, MigrationEvents } from '../migration.constants';
import type { ResolvedMigrationOptions } from '../migration.options';
import type { LegacyConnectionRow, LegacyCredentialSource, LegacyFilter } from '../sources/legacy-source';
import { AimdLimiter } from './aimd-limiter';
import { ConnectionMigrator, entry, type GroupResult, type MigrationCall, type WouldStore } from './connection-migrator';
import { LegacyFeed, type FeedItem } from './legacy-feed';
import type { ConnectionOutcome, MigrationErrorEntry, MigrationRunOptions, MigrationSummary } from './migration.types';
import type { VaultBudget } from './vault-budget';
import { VaultOutage } from './vault-outage';

const PROGRESS_EVENT_EVERY_MS = 1000;
const CANCELLED = KeyVaultErrorCode[KeyVaultErrorCode.CANCELLED];

interface Run {
  runId: string;
  /** The run's id and signal, for the migrator's calls. */
  call: MigrationCall;
  /** The run's signal has aborted: no new connection is taken. */
  stopping: () => boolean;
  source: LegacyCredentialSource;
  /** The limiter and the outage watch every vault call of the run goes through. */
  budget: VaultBudget;
  deleteAfter: boolean;
  record: (out: ConnectionOutcome) => void;
  /** deleteAfterMigration work started after a group committed; awaited at the end. */
  clearing: Set<Promise<void>>;
  lastEvent: number;
  counts: () => OutboxPayload;
  /** The first write the vault refused for a permission: every further one would fail alike, so the run stops. */
  refusal?: CredentialVaultError;
  /** A dry run: the fields it would have stored so far (`ConnectionMigrator.checkGroup`); undefined in a real run. */
  wouldStore?: Map<string, WouldStore>;
}

/**
 * Runs a migration of one source. A `LegacyFeed` reads pages of `batchSize` connections ahead,
 * decrypts them and looks up their checkpoints; what needs the vault is migrated in GROUPS of up to
 * `group.maxConnections` connections: their vault writes run concurrently under one AIMD limiter,
 * then ONE transaction (the credentials lib's `storeMany`) holds their credentials' rows, a MIGRATE
 * audit row per credential and their checkpoints — one commit per group instead of one per
 * credential. Several groups are in flight at once, so vault writes go on while a group commits.
 * A credential is never committed without its MIGRATE row and checkpoint (or the reverse).
 * `MigrationRunOptions.signal` stops it: no new connection, the vault calls not sent dropped, what is in flight awaited.
 */
@Injectable()
export class MigrationRunner {
  private readonly logger = new Logger(MigrationRunner.name);

  constructor(
    private readonly migrator: ConnectionMigrator,
    private readonly checkpoints: MigrationCheckpointRepository,
    private readonly runner: TransactionRunner,
    private readonly outbox: Outbox,
    @Inject(MIGRATION_RESOLVED_OPTIONS) private readonly options: ResolvedMigrationOptions,
  ) {}

  async run(source: LegacyCredentialSource, o: MigrationRunOptions = {}): Promise<MigrationSummary> {
    const started = Date.now();
    const runId = randomUUID();
    const dryRun = o.dryRun ?? false;
    const batchSize = o.batchSize ?? this.options.batchSize;
    const filter: LegacyFilter = { tenantId: o.tenantId, integrationId: o.integrationId };
    const limiter = new AimdLimiter(this.options.concurrency);
    const outage = new VaultOutage(this.options.maxVaultOutageMs, this.logger);
    const s: MigrationSummary = {
      source: source.name, dryRun, totalConnections: 0, successfulMigrations: 0, failedMigrations: 0, skipped: 0,
      totalCredentialsMigrated: 0, durationMs: 0, errors: [], rowsByKeyIndex: {},
      throttling: { absorbed: 0, decreases: 0, maxConcurrency: 0, finalConcurrency: 0 }, aborted: false,
    };
    const stopping = () => o.signal?.aborted === true;
    s.totalConnections = await source.count(filter);
    const counts = () => ({ runId, done: s.successfulMigrations + s.failedMigrations + s.skipped, total: s.totalConnections, successful: s.successfulMigrations, failed: s.failedMigrations, skipped: s.skipped, credentials: s.totalCredentialsMigrated });
    if (!dryRun) await this.event(MigrationEvents.STARTED, { runId, source: source.name, total: s.totalConnections });
    this.logger.log(`migration ${runId} of ${source.name}: ${s.totalConnections} connection(s)${dryRun ? ' (dry run)' : ''}`);

    const record = (out: ConnectionOutcome) => {
      if (out.status === 'migrated') s.successfulMigrations++;
      else if (out.status === 'failed') s.failedMigrations++;
      else s.skipped++;
      s.totalCredentialsMigrated += out.status === 'migrated' ? out.credentials : 0;
      if (out.keyIndex !== null && out.status !== 'failed') s.rowsByKeyIndex[out.keyIndex] = (s.rowsByKeyIndex[out.keyIndex] ?? 0) + 1;
      s.errors.push(...out.errors);
      o.onProgress?.(counts());
    };
    const run: Run = {
      runId, call: { runId, signal: o.signal }, stopping, source, budget: { limiter, outage }, deleteAfter: !!o.deleteAfterMigration && !dryRun, record, clearing: new Set(), lastEvent: Date.now(), counts,
      wouldStore: dryRun ? new Map() : undefined,
    };

    // A dry run reads the checkpoints too: what an earlier run migrated, the real run would skip.
    const feed = new LegacyFeed(source, filter, batchSize, this.migrator, (ids) => this.checkpoints.find(source.name, ids), {
      highWater: Math.max((groupsInFlight(this.options) + 1) * this.options.group.maxConnections, batchSize),
      onReady: (item) => this.settleWithoutVault(item, run),
    });
    // Aborted: the feed reads no further page and hands out nothing more, waking the groups waiting for rows.
    const stop = () => feed.stop();
    o.signal?.addEventListener('abort', stop, { once: true });
    // Aborted before this point (during the count, say): the listener never fires, and the feed would fill and wait.
    if (stopping()) stop();
    try {
      // Started outside any transaction: its checkpoint reads must never join a group's.
      const feeding = this.runner.detached(() => feed.start());
      const size = this.options.group.maxConnections;
      const inFlight = new Set<string>();
      // Two legacy rows of one connection never run in two transactions (a dry run: two checks) at once.
      const free = (item: FeedItem) => !inFlight.has(connectionKey(item.row));
      const claim = (item: FeedItem) => {
        if (!free(item)) return false;
        inFlight.add(connectionKey(item.row));
        return true;
      };
      await Promise.all(
        Array.from({ length: groupsInFlight(this.options) }, async () => {
          while (!halted(run) && !stopping() && (await feed.waitForItems(free))) {
            // A vault outage: no new group starts until the breaker lets a trial through (its calls would wait anyway).
            if (await outage.paused(o.signal)) continue;
            const items = feed.take(size, claim);
            try {
              await this.group(items, run);
            } finally {
              for (const i of items) inFlight.delete(connectionKey(i.row));
              feed.nudge();
            }
          }
        }),
      );
      if (run.refusal) {
        feed.stop();
        throw new MigrationVaultRefusedError(run.refusal.codeName, s.successfulMigrations, { cause: run.refusal });
      }
      if (outage.expired) {
        feed.stop();
        throw new MigrationVaultUnavailableError(outage.expired.codeName, s.successfulMigrations, outage.maxOutageMs, { cause: outage.expired });
      }
      await feeding;
      feed.result();
      await Promise.all(run.clearing);
    } catch (e) {
      feed.stop();
      await Promise.allSettled(run.clearing);
      if (!dryRun) await this.event(MigrationEvents.FAILED, { ...counts(), error: String((e as { codeName?: string }).codeName ?? (e as Error).name) }).catch(() => undefined);
      if (e instanceof MigrationStoppedError) {
        // What it did up to the stop (the CLI's table and report), the clears in flight included.
        e.summary = this.finish(s, limiter, started, stopping);
        e.summary.stopped = { code: e.codeName, reason: e.message };
        this.logger.error(`migration ${runId} stopped: ${e.message}`);
      }
      throw e;
    } finally {
      o.signal?.removeEventListener('abort', stop);
    }
    this.finish(s, limiter, started, stopping);
    if (!dryRun) await this.event(s.aborted ? MigrationEvents.ABORTED : MigrationEvents.COMPLETED, { ...counts(), durationMs: s.durationMs });
    this.logger.log(`migration ${runId}${s.aborted ? ' aborted' : ''}: ${s.successfulMigrations} migrated, ${s.failedMigrations} failed, ${s.skipped} skipped`);
    return s;
  }

  /** The summary's last figures: the limiter's, the duration, and whether the run's signal cut it short. */
  private finish(s: MigrationSummary, limiter: AimdLimiter, started: number, stopping: () => boolean): MigrationSummary {
    const t = limiter.snapshot();
    s.throttling = { absorbed: t.throttles, decreases: t.decreases, maxConcurrency: t.maxLimitReached, finalConcurrency: t.limit };
    s.durationMs = Date.now() - started;
    // Aborted once every connection was settled anyway: a complete run.
    s.aborted = stopping() && s.successfulMigrations + s.failedMigrations + s.skipped < s.totalConnections;
    return s;
  }

  /**
   * Rows that need no vault write (already checkpointed, undecryptable) are settled by the feed at once; it returns
   * false for rows that a group must migrate — or, in a dry run, check against the live credentials.
   */
  private settleWithoutVault(item: FeedItem, run: Run): boolean {
    const { row, checkpoint, fields, errors } = item;
    if (checkpoint) {
      if (run.deleteAfter && checkpoint.status === 'migrated' && !errors.length && fields.length) {
        // Aborted: its clear is left to the next run (its checkpoint stays `migrated`).
        if (run.stopping()) return true;
        this.track(run, this.migrator.clearMigrated(row, run.source, run.budget, fields, run.call).then((e) => {
          if (!leftForNextRun(run, e)) run.record({ status: e.length ? 'failed' : 'skipped', credentials: 0, keyIndex: null, errors: e });
        }));
      } else run.record({ status: 'skipped', credentials: 0, keyIndex: null, errors: [] });
      return true;
    }
    if (errors.length) {
      run.record({ status: 'failed', credentials: 0, keyIndex: null, errors });
      return true;
    }
    return false;
  }

  /**
   * One group: every connection of `items` (never two of one connection) migrated with ONE
   * transaction. Outcomes count only once it has committed. If it cannot commit, each connection is
   * tried again alone, so one bad connection costs only itself.
   */
  private async group(items: FeedItem[], run: Run): Promise<void> {
    let results: GroupResult[];
    try {
      results = run.wouldStore
        ? await this.migrator.checkGroup(items, run.source, run.budget, run.call, run.wouldStore)
        : await this.migrator.migrateGroup(items, run.source, run.budget, run.call);
    } catch (e) {
      if (run.stopping()) {
        // Aborted: nothing of the group committed, so the next run takes its connections again — unless its commit's
        // outcome is unknown: then they are reported failed with it (a re-run finds what did commit).
        if (e instanceof CommitNotDurableError) for (const item of items) run.record({ status: 'failed', credentials: 0, keyIndex: null, errors: [entry(item.row, null, e)] });
        return;
      }
      if (items.length === 1) {
        run.record({ status: 'failed', credentials: 0, keyIndex: null, errors: [entry(items[0].row, null, e)] });
        return;
      }
      this.logger.warn(`a group of ${items.length} connections could not commit (${(e as Error).name}); trying each alone`);
      for (const item of items) await this.group([item], run);
      return;
    }
    run.refusal ??= results.find((r) => r.vaultRefusal)?.vaultRefusal;
    for (const r of results) {
      // A connection whose vault call the abort cut short, or that met the run's stop, committed nothing and has no
      // checkpoint: the next run's.
      if (leftForNextRun(run, r.outcome.errors)) continue;
      if (r.stored && run.deleteAfter) {
        const stored = r.stored;
        this.track(run, this.migrator.clearVerified(stored, run.source, run.budget, run.call).then((errors) =>
          // Committed, its clear cut short (or stopped): migrated, its fields left for the next run to verify and clear.
          run.record(errors.length && !leftForNextRun(run, errors) ? { ...r.outcome, status: 'failed', errors: [...r.outcome.errors, ...errors] } : r.outcome),
        ));
      } else run.record(r.outcome);
    }
    if (!run.wouldStore && Date.now() - run.lastEvent >= PROGRESS_EVENT_EVERY_MS) {
      run.lastEvent = Date.now();
      await this.event(MigrationEvents.PROGRESS, run.counts());
    }
  }

  private track(run: Run, p: Promise<void>): void {
    const tracked = p.finally(() => run.clearing.delete(tracked));
    run.clearing.add(tracked);
  }

  private async event(name: string, payload: OutboxPayload): Promise<void> {
    await this.runner.run(() => this.outbox.add({ name, payload }));
  }
}

/** The run stops: the vault refused a write for a permission, or an outage outlasted `maxVaultOutageMs`. */
function halted(run: Run): boolean {
  return run.refusal !== undefined || run.budget.outage.expired !== undefined;
}

/**
 * A connection's errors include a vault call the run's abort cut short (CANCELLED), or what stopped the run (the refusal,
 * the outage): not its failure, nor reported — it committed nothing, and the next run takes it.
 */
function leftForNextRun(run: Run, errors: MigrationErrorEntry[]): boolean {
  const refused = run.refusal?.codeName;
  const expired = run.budget.outage.expired !== undefined;
  return errors.some((e) => (e.code === CANCELLED && run.stopping()) || e.code === refused || (expired && VaultOutage.isOutageCode(e.code)));
}

/** Groups migrating at once: enough to keep `concurrency.max` vault writes busy while one of them commits. */
function groupsInFlight(o: ResolvedMigrationOptions): number {
  return Math.ceil(o.concurrency.max / o.group.maxConnections) + 1;
}

function connectionKey(row: LegacyConnectionRow): string {
  return JSON.stringify([row.tenantId, row.integrationId, row.connectionId]);
}
