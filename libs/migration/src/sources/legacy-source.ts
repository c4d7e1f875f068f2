import type { CredentialType } from '@app/credentials';

/** One legacy connection: its ids and its encrypted fields by credential type. No plaintext. */
export interface LegacyConnectionRow {
  /** The row's id in the source (primary key, or line id): the checkpoint key. */
  legacyId: string;
  tenantId: string;
  integrationId: string;
  connectionId: string;
  /** `iv:authTag:ciphertext` per credential type; null/'' = the field is empty. */
  fields: Partial<Record<CredentialType, string | null>>;
  createdAt: Date | null;
  expiresAt: Date | null;
}

export interface LegacyFilter {
  tenantId?: string;
  integrationId?: string;
}

/**
 * Where legacy credentials come from (`SqlLegacySource`, `JsonlLegacySource`). Pages are keyset
 * pages ordered by `legacyId`, so a resumed run reads from the start and skips by checkpoint.
 */
export interface LegacyCredentialSource {
  /** A stable name of the source (checkpoints are kept per source name). */
  readonly name: string;
  /** The legacy column (or key) of each credential type, for the report's `field`. */
  readonly columns: Readonly<Partial<Record<CredentialType, string>>>;
  count(filter: LegacyFilter): Promise<number>;
  /** Up to `limit` rows with `legacyId` after `after` (in the source's order), matching `filter`. */
  page(filter: LegacyFilter, after: string | undefined, limit: number): Promise<LegacyConnectionRow[]>;
  /** Clears the given fields of one row (deleteAfterMigration). Sources that cannot must throw. */
  clearFields(row: LegacyConnectionRow, types: CredentialType[]): Promise<void>;
  close(): Promise<void>;
}
