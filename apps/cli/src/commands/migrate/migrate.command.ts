import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { Command, CommandRunner, Option } from 'nest-commander';
import { DataSource } from 'typeorm';
import { PersistenceModule, unknownMigrations } from '@app/common';
import { formatSummaryTable, JsonlLegacySource, MigrationModule, MigrationRunner, MigrationStoppedError, SqlLegacySource, type LegacyCredentialSource, type MigrationRunOptions, type MigrationSummary } from '@app/migration';
import { AppConfigModule, loadAppConfigReadingFiles, persistenceOptions, VaultModule, type AppConfig } from '@app/api-host';
import { commandDatabaseModule, databaseLabel, hostSchemaState, initializeOnce, LEGACY_DATABASE_VARIABLES, warnOfNewerSchema } from '../command-database';
import { commandLibModules } from '../host-libs.context';
import { loadMigrateEnv } from './migrate.config';
import { ProgressReporter } from './progress-reporter';
import { COMMAND_CONTEXT_OPTIONS } from '../../cli-output';

export interface MigrateFlags {
  source?: 'sql' | 'jsonl';
  file?: string;
  dryRun?: boolean;
  batchSize?: number;
  tenant?: string;
  integration?: string;
  report?: string;
  deleteAfterMigration?: boolean;
}

/**
 * `cli migrate --source sql|jsonl [--file f] [--dry-run] [--batch-size n] [--tenant t] [--integration i]
 * [--report out.json] [--delete-after-migration]`: moves legacy AES-256-GCM credentials into the vault
 * with the host's database and vault (same environment variables as the host) plus LEGACY_* variables.
 * Exit code 1 when any connection failed, when the run stopped early (8007 the vault refused a write, 8008 it stayed
 * unavailable: the summary and report cover what was done up to there), or for a dry run on a database without the schema or with one older than this
 * version (it creates or changes none); a schema newer than this version is named in a warning, dry run or not. Safe to interrupt: a re-run resumes (see libs/migration).
 * SIGINT/SIGTERM stop it gracefully (`MigrationRunOptions.signal`): the writes in flight finish, the summary and report
 * say `aborted`, exit code 128 + the signal's number (130, 143) as a shell reports a process the signal ended; a second
 * signal ends it at once (as a kill -9: still resumable).
 */
@Command({ name: 'migrate', description: 'Migrate legacy AES-256-GCM credentials into the vault (resumable; --dry-run to check first)' })
export class MigrateCommand extends CommandRunner {
  async run(_args: string[], flags: MigrateFlags): Promise<void> {
    const source = flags.source;
    if (source !== 'sql' && source !== 'jsonl') throw new Error('--source must be sql or jsonl');
    if (source === 'jsonl' && !flags.file) throw new Error('--source jsonl needs --file <legacy.jsonl>');
    if (flags.deleteAfterMigration && source !== 'sql') throw new Error('--delete-after-migration needs --source sql');
    // The vault client retries a 429 after its Retry-After (10 attempts), so a throttled attempt never reaches the
    // credentials lib and is never audited; the migration's limiter backs off on such slow calls.
    const env = { KEY_VAULT_MAX_ATTEMPTS: '10', ...process.env };
    // The files it names too (a vault CA): one that cannot be read is listed with the other problems, as for the host.
    const config = loadAppConfigReadingFiles(env);
    const m = loadMigrateEnv(env, { needKeys: true, needDatabase: source === 'sql' });
    if (flags.dryRun) await refuseDryRunOnSchemaNotCurrent(config);

    @Module({
      imports: [
        AppConfigModule.forRoot(config),
        commandDatabaseModule(),
        EventEmitterModule.forRoot({ wildcard: false, delimiter: '.' }),
        // This process only writes: the host's dispatcher delivers the events.
        PersistenceModule.forRoot(persistenceOptions(config, { dispatch: false })),
        VaultModule,
        ...commandLibModules(config),
        MigrationModule.forRoot({ keys: m.keys, batchSize: flags.batchSize, concurrency: { initial: m.concurrency.initial, max: m.concurrency.max }, maxVaultOutageMs: m.maxVaultOutageMs }),
      ],
    })
    class MigrateModule {}

    let legacyDb: DataSource | undefined;
    let legacy: LegacyCredentialSource;
    if (source === 'sql') {
      const d = m.legacyDatabase!;
      // One attempt, and a failure names the database and its variable (never the URL's password), as for the host's.
      legacyDb = await initializeOnce(
        d.type === 'postgres' ? { type: 'postgres', url: d.url } : { type: 'better-sqlite3', database: d.path, fileMustExist: true },
        LEGACY_DATABASE_VARIABLES,
      );
      legacy = new SqlLegacySource(legacyDb, m.mapping);
    } else {
      legacy = new JsonlLegacySource(flags.file!, m.mapping);
    }

    const ctx = await NestFactory.createApplicationContext(MigrateModule, COMMAND_CONTEXT_OPTIONS);
    // The host's database as the run opened it (a dry run checked it before anything opened).
    if (!flags.dryRun) warnOfNewerSchema(await unknownMigrations(ctx.get(DataSource)), databaseLabel(ctx.get(DataSource).options));
    const progress = new ProgressReporter();
    const interrupt = new GracefulInterrupt();
    try {
      progress.start(await legacy.count({ tenantId: flags.tenant, integrationId: flags.integration }));
      const summary = await runToSummary(ctx.get(MigrationRunner), legacy, {
        signal: interrupt.signal,
        dryRun: flags.dryRun,
        batchSize: flags.batchSize,
        tenantId: flags.tenant,
        integrationId: flags.integration,
        deleteAfterMigration: flags.deleteAfterMigration,
        onProgress: (p) => progress.update(p),
      });
      progress.stop();
      if (flags.report) writeFileSync(flags.report, `${JSON.stringify(summary, null, 2)}\n`, { mode: 0o600 });
      process.stdout.write(`${formatSummaryTable(summary)}\n`);
      if (summary.failedMigrations > 0 || summary.stopped) process.exitCode = 1;
      if (summary.aborted) process.exitCode = interrupt.exitCode();
    } finally {
      interrupt.dispose();
      progress.stop();
      await legacy.close();
      await ctx.close();
      if (legacyDb?.isInitialized) await legacyDb.destroy();
    }
  }

  @Option({ flags: '--source <kind>', description: 'sql (LEGACY_DATABASE_URL / LEGACY_DATABASE_PATH) or jsonl (--file)', required: true })
  parseSource(v: string): string {
    return v;
  }

  @Option({ flags: '--file <path>', description: 'the JSON-lines file of --source jsonl' })
  parseFile(v: string): string {
    return v;
  }

  @Option({ flags: '--dry-run', description: 'decrypt, validate and compare with what is stored (reads only): the report of the run, nothing written' })
  parseDryRun(): boolean {
    return true;
  }

  @Option({ flags: '--batch-size <n>', description: 'connections per page (default 10)' })
  parseBatchSize(v: string): number {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1 || n > 10_000) throw new Error('--batch-size must be an integer from 1 to 10000');
    return n;
  }

  @Option({ flags: '--tenant <tenant>', description: 'only this tenant' })
  parseTenant(v: string): string {
    return v;
  }

  @Option({ flags: '--integration <integration>', description: 'only this integration' })
  parseIntegration(v: string): string {
    return v;
  }

  @Option({ flags: '--report <path>', description: 'write the JSON summary here (mode 0600)' })
  parseReport(v: string): string {
    return v;
  }

  @Option({ flags: '--delete-after-migration', description: 'clear the legacy fields once each value was read back from the vault and compared (sql only)' })
  parseDelete(): boolean {
    return true;
  }
}

/**
 * The run's summary — also when it stopped early (8007 vault refused, 8008 vault unavailable: `summary.stopped`), which
 * is then what it did up to the stop. Its message is printed once, by the runner's error log (with the run's id), not
 * again as the command's failure.
 */
async function runToSummary(runner: MigrationRunner, source: LegacyCredentialSource, o: MigrationRunOptions): Promise<MigrationSummary> {
  try {
    return await runner.run(source, o);
  } catch (e) {
    if (e instanceof MigrationStoppedError && e.summary) return e.summary;
    throw e;
  }
}

const INTERRUPTS = ['SIGINT', 'SIGTERM'] as const;

/**
 * The first SIGINT or SIGTERM aborts `signal` (the run stops gracefully); its handlers are then removed, so a second one
 * ends the process at once, by Node's default.
 */
class GracefulInterrupt {
  private readonly controller = new AbortController();
  private received?: NodeJS.Signals;
  private readonly onSignal = (sig: NodeJS.Signals) => {
    this.received = sig;
    this.dispose();
    process.stderr.write(`${sig}: stopping after the writes in flight (${sig} again to stop at once; a re-run resumes either way)\n`);
    this.controller.abort();
  };

  constructor() {
    for (const sig of INTERRUPTS) process.once(sig, this.onSignal);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** 128 + the signal's number, as a shell reports a process that signal ended (130 for SIGINT, 143 for SIGTERM). */
  exitCode(): number {
    return 128 + constants.signals[this.received ?? 'SIGINT'];
  }

  dispose(): void {
    for (const sig of INTERRUPTS) process.removeListener(sig, this.onSignal);
  }
}

/** A dry run on a host database without the schema: it has nothing to compare with, and must not create the schema. */
export class MigrateDryRunWithoutSchemaError extends Error {
  override readonly name = 'MigrateDryRunWithoutSchemaError';
}

/** A dry run on a host database whose schema is older than this version: it must not apply the pending migrations. */
export class MigrateDryRunSchemaOutdatedError extends Error {
  override readonly name = 'MigrateDryRunSchemaOutdatedError';
}

/**
 * A dry run writes nothing, and the host's database runs its pending migrations as the command opens it (then the
 * embedded vault starts). So, before either opens: on a database without the schema it would create it — most often the database
 * named is not the host's (a mistyped DATABASE_PATH is a new, empty file); on a schema older than this version it would
 * change it. Said instead, with how to go on. On a schema a later version migrated (cv_migrations names migrations this
 * version lacks) every run goes on, dry or not, as the host does (TypeORM passes over them; old replicas run so during a
 * rolling upgrade, and after a release is rolled back the later version may not be there to run): a warning names them.
 */
async function refuseDryRunOnSchemaNotCurrent(config: AppConfig): Promise<void> {
  const { present, pending, unknown, label } = await hostSchemaState(config);
  warnOfNewerSchema(unknown, label);
  if (!present) {
    throw new MigrateDryRunWithoutSchemaError(
      `${label} has no Credential Vault schema: nothing to compare against, every field would be new (the legacy rows were not ` +
        'decrypted or checked). No schema was created. Check that this is the host\'s database; to migrate into a new one, run migrate without --dry-run.',
    );
  }
  if (pending.length) {
    throw new MigrateDryRunSchemaOutdatedError(
      `${label} has a Credential Vault schema older than this version: ${pending.length} migration${pending.length === 1 ? '' : 's'} pending ` +
        `(${pending.join(', ')}). A dry run applies none: nothing was changed, the legacy rows were not decrypted or checked. ` +
        'Bring the schema up to date first — starting the host applies them, as does migrate without --dry-run (which also migrates) — then run the dry run again.',
    );
  }
}
