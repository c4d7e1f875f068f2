import { Column, Entity, PrimaryColumn } from 'typeorm';
import { epochMsDate } from '@app/common';

/**
 * One legacy connection the migration finished: written in the transaction of its MIGRATE audit
 * rows, so a re-run skips it. Ids and counts only, never a value.
 */
@Entity({ name: 'cv_migration_checkpoints' })
export class MigrationCheckpointEntity {
  /** The source's name (`sql:<table>`, `jsonl:<file>`): checkpoints of two sources never mix. */
  @PrimaryColumn({ type: 'varchar', length: 200 })
  source: string;

  @PrimaryColumn({ name: 'legacy_id', type: 'varchar', length: 200 })
  legacyId: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 128 })
  tenantId: string;

  @Column({ name: 'integration_id', type: 'varchar', length: 128 })
  integrationId: string;

  @Column({ name: 'connection_id', type: 'varchar', length: 128 })
  connectionId: string;

  /** `migrated`, or `cleared` once the legacy fields were verified and cleared. */
  @Column({ type: 'varchar', length: 16 })
  status: 'migrated' | 'cleared';

  /** Credentials of the connection now in the vault (written by this run or an earlier one). */
  @Column({ type: 'integer' })
  credentials: number;

  @Column({ name: 'migrated_at', type: 'bigint', transformer: epochMsDate })
  migratedAt: Date;
}
