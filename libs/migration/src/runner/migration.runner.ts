import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { Outbox, TransactionRunner, type OutboxPayload } from '@app/common';
import { MigrationCheckpointRepository } from '../checkpoint/migration-checkpoint.repository';
import { MIGRATION_RESOLVED_OPTIONS, MigrationEvents } from '../migration.constants';
import type { ResolvedMigrationOptions } from '../migration.options';
import type { LegacyCredentialSource, LegacyFilter } from '../sources/legacy-source';
import { AimdLimiter } from './aimd-limiter';
import { CheckpointWriter } from './checkpoint-writer';
import { ConnectionMigrator, entry } from './connection-migrator';
import type { ConnectionOutcome, MigrationRunOptions, MigrationSummary } from './migration.types';

const PROGRESS_EVENT_EVERY_MS = 1000;

/**
 * Runs a migration of one source: pages of `batchSize` connections, already-checkpointed ones
 * skipped, the others migrated concurrently under one AIMD limiter (the vault's budget decides how
 * many writes are in flight), events on the outbox, and a summary at the end.
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
    const writer = new CheckpointWriter(this.runner, this.migrator.audit, this.checkpoints);
    const s: MigrationSummary = {
      source: source.name, dryRun, totalConnections: 0, successfulMigrations: 0, failedMigrations: 0, skipped: 0,
      totalCredentialsMigrated: 0, durationMs: 0, errors: [], rowsByKeyIndex: {},
      throttling: { absorbed: 0, decreases: 0, maxConcurrency: 0, finalConcurrency: 0 },
    };
    s.totalConnections = await source.count(filter);
    const counts = () => ({ runId, done: s.successfulMigrations + s.failedMigrations + s.skipped, total: s.totalConnections, successful: s.successfulMigrations, failed: s.failedMigrations, skipped: s.skipped, credentials: s.totalCredentialsMigrated });
    if (!dryRun) await this.event(MigrationEvents.STARTED, { runId, source: source.name, total: s.totalConnections });
    this.logger.log(`migration ${runId} of ${source.name}: ${s.totalConnections} connection(s)${dryRun ? ' (dry run)' : ''}`);

    let lastEvent = Date.now();
    const record = (out: ConnectionOutcome) => {
      if (out.status === 'migrated') s.successfulMigrations++;
      else if (out.status === 'failed') s.failedMigrations++;
      else s.skipped++;
      s.totalCredentialsMigrated += out.status === 'migrated' ? out.credentials : 0;
      if (out.keyIndex !== null && out.status !== 'failed') s.rowsByKeyIndex[out.keyIndex] = (s.rowsByKeyIndex[out.keyIndex] ?? 0) + 1;
      s.errors.push(...out.errors);
      o.onProgress?.(counts());
    };

    // Connections in flight are bounded by the limiter's ceiling; the limiter bounds the vault calls.
    const inFlight = new Set<Promise<void>>();
    const maxInFlight = Math.max(this.options.concurrency.max, batchSize);
    try {
      for (let after: string | undefined; ; ) {
        const rows = await source.page(filter, after, batchSize);
        if (!rows.length) break;
        after = rows[rows.length - 1].legacyId;
        const done = dryRun ? new Map() : await this.checkpoints.find(source.name, rows.map((r) => r.legacyId));
        for (const row of rows) {
          while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
          const p = (async () => {
            const checkpoint = done.get(row.legacyId);
            const { fields, errors } = this.migrator.decrypt(row, source.columns);
            if (checkpoint) {
              const clearErrors = o.deleteAfterMigration && checkpoint.status === 'migrated' && !errors.length && fields.length
                ? await this.migrator.clearMigrated(row, source, limiter, fields, runId)
                : [];
              return record({ status: clearErrors.length ? 'failed' : 'skipped', credentials: 0, keyIndex: null, errors: clearErrors });
            }
            if (errors.length) return record({ status: 'failed', credentials: 0, keyIndex: null, errors });
            const keyIndex = Math.max(...fields.map((f) => f.keyIndex));
            if (dryRun) return record({ status: 'migrated', credentials: fields.length, keyIndex, errors: [] });
            record(await this.migrator.migrate(row, source, limiter, fields, { runId, deleteAfter: !!o.deleteAfterMigration, writer }));
          })().catch((e: unknown) => record({ status: 'failed', credentials: 0, keyIndex: null, errors: [entry(row, null, e)] }));
          const tracked = p.finally(() => inFlight.delete(tracked));
          inFlight.add(tracked);
        }
        if (!dryRun && Date.now() - lastEvent >= PROGRESS_EVENT_EVERY_MS) {
          lastEvent = Date.now();
          await this.event(MigrationEvents.PROGRESS, counts());
        }
      }
      await Promise.all(inFlight);
      await writer.flush();
    } catch (e) {
      await Promise.allSettled(inFlight);
      if (!dryRun) await this.event(MigrationEvents.FAILED, { ...counts(), error: String((e as { codeName?: string }).codeName ?? (e as Error).name) }).catch(() => undefined);
      throw e;
    }
    const t = limiter.snapshot();
    s.throttling = { absorbed: t.throttles, decreases: t.decreases, maxConcurrency: t.maxLimitReached, finalConcurrency: t.limit };
    s.durationMs = Date.now() - started;
    if (!dryRun) await this.event(MigrationEvents.COMPLETED, { ...counts(), durationMs: s.durationMs });
    this.logger.log(`migration ${runId}: ${s.successfulMigrations} migrated, ${s.failedMigrations} failed, ${s.skipped} skipped`);
    return s;
  }

  private async event(name: string, payload: OutboxPayload): Promise<void> {
    await this.runner.run(() => this.outbox.add({ name, payload }));
  }
}
