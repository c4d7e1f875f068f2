import type { CredentialType } from '@app/credentials';
import type { LegacyFilter } from '../sources/legacy-source';

/** Options of one run (`MigrationRunner.run`). */
export interface MigrationRunOptions extends LegacyFilter {
  /**
   * Report what the run would, writing nothing (no credential, vault secret, checkpoint, audit row or event): rows are
   * decrypted and validated, checkpoints read, and each field compared with the live credential of its slot (a vault
   * read) or with an earlier legacy row's, for the run's DUPLICATE and MIGRATION_CONFLICT.
   */
  dryRun?: boolean;
  /** Connections per source page and per progress step. @default the module's `batchSize` (10) */
  batchSize?: number;
  /** Clear the legacy fields once every value was read back from the vault and compared. SQL source only. */
  deleteAfterMigration?: boolean;
  /** Called after each connection (the CLI draws its progress bar from it). */
  onProgress?: (p: MigrationProgress) => void;
  /**
   * Stops the run gracefully (the CLI's SIGINT/SIGTERM): once aborted, no new connection is taken, the run's vault calls
   * not sent yet are dropped and its reads in flight aborted (CANCELLED), the value writes already sent finish and
   * commit with their group, and the run resolves with `aborted: true`. A connection cut short is neither counted nor
   * reported, and has no checkpoint: the next run migrates it, storing each field once (as after a kill -9).
   */
  signal?: AbortSignal;
}

export interface MigrationProgress {
  done: number;
  total: number;
  successful: number;
  failed: number;
  skipped: number;
  credentials: number;
}

/** One problem of one connection. Names the connection and field, never a value. */
export interface MigrationErrorEntry {
  legacyId: string;
  tenantId: string;
  integrationId: string;
  connectionId: string;
  /** The legacy column (or JSON key), or null for the whole connection. */
  field: string | null;
  /** The error's code name (`LEGACY_AUTH_TAG`, `VALIDATION`, ...) or `DUPLICATE`. */
  code: string;
  reason: string;
}

export interface MigrationSummary {
  source: string;
  dryRun: boolean;
  totalConnections: number;
  successfulMigrations: number;
  failedMigrations: number;
  skipped: number;
  totalCredentialsMigrated: number;
  durationMs: number;
  errors: MigrationErrorEntry[];
  /** Connections decrypted by each legacy key index (0 = the first key given). */
  rowsByKeyIndex: Record<string, number>;
  /** The adaptive concurrency: 429s absorbed (retried, never reported as errors) and the largest limit reached. */
  throttling: { absorbed: number; decreases: number; maxConcurrency: number; finalConcurrency: number };
  /**
   * The run was stopped through `MigrationRunOptions.signal` before it settled every connection: the counts cover
   * those it settled; run it again to migrate the rest.
   */
  aborted: boolean;
  /**
   * Only when the run stopped early with a `MigrationStoppedError` (8007 `MIGRATION_VAULT_REFUSED`, 8008
   * `MIGRATION_VAULT_UNAVAILABLE`), this summary being that error's `summary`: its code name and message (never a value).
   * The counts cover the connections it settled; run it again to migrate the rest.
   */
  stopped?: { code: string; reason: string };
}

/** What happened to one connection. */
export interface ConnectionOutcome {
  status: 'migrated' | 'skipped' | 'failed';
  /** Credentials of the connection now in the vault (stored now, or found stored with the same value). */
  credentials: number;
  keyIndex: number | null;
  errors: MigrationErrorEntry[];
}

export interface DecryptedField {
  type: CredentialType;
  column: string;
  value: string;
  keyIndex: number;
}
