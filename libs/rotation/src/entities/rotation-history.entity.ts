import { epochMsDate } from '@app/common';
import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * One rotation, rollback, revoke or un-revoke of a credential: who, when, why, from which version. Never a value.
 * One row per rotation or rollback (each makes a new version): a second recording of one is skipped on insert.
 */
@Entity({ name: 'cv_rotation_history' })
@Index('IDX_cv_rotation_history_credential', ['tenantId', 'credentialId', 'createdAt'])
@Index('UQ_cv_rotation_history_rotation', ['credentialId', 'action', 'toVersion'], { unique: true, where: `"action" IN ('rotate', 'rollback')` })
export class RotationHistoryEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 128 })
  tenantId: string;

  @Column({ name: 'credential_id', type: 'varchar', length: 36 })
  credentialId: string;

  /** `rotate`, `rollback`, `revoke`, `unrevoke`. */
  @Column({ type: 'varchar', length: 16 })
  action: string;

  /** How the value was obtained or why it ran: `given`, `handler`, `generator`, `scheduled`, `rollback`, `revoke`... */
  @Column({ type: 'varchar', length: 16 })
  method: string;

  @Column({ name: 'from_version', type: 'integer', nullable: true })
  fromVersion: number | null;

  @Column({ name: 'to_version', type: 'integer', nullable: true })
  toVersion: number | null;

  @Column({ type: 'varchar', length: 256 })
  actor: string;

  @Column({ type: 'varchar', length: 512, nullable: true })
  reason: string | null;

  /** Revokes: `low`, `medium`, `high`, `critical`. */
  @Column({ type: 'varchar', length: 16, nullable: true })
  severity: string | null;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMsDate })
  createdAt: Date;
}
