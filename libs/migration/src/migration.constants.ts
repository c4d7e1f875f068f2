/** Internal token of the merged, validated options (ResolvedMigrationOptions). */
export const MIGRATION_RESOLVED_OPTIONS = Symbol('migration:resolved-options');
/** Internal token of the Clock the lib uses (`provideLibClock`). */
export const MIGRATION_CLOCK = Symbol('migration:clock');
/** Actor id recorded in audit rows of credentials the migration writes. */
export const MIGRATION_ACTOR = 'system:migration';

/** Outbox event names (payloads: ids and counts only). */
export const MigrationEvents = {
  STARTED: 'credential.migration.started',
  PROGRESS: 'credential.migration.progress',
  COMPLETED: 'credential.migration.completed',
  FAILED: 'credential.migration.failed',
  /** The run was stopped through its signal (`MigrationRunOptions.signal`): resumable. */
  ABORTED: 'credential.migration.aborted',
} as const;
