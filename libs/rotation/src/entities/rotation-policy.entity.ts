import { epochMsDate } from '@app/common';
import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * One policy override. `target` is '' at tenant level, and `credential_type` '' for "every type":
 * NOT NULL columns, so the unique index holds on both databases (NULLs never collide).
 * A NULL field is inherited from the next level down.
 */
@Entity({ name: 'cv_rotation_policies' })
@Index('UQ_cv_rotation_policies_scope', ['tenantId', 'level', 'target', 'credentialType'], { unique: true })
export class RotationPolicyEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 128 })
  tenantId: string;

  @Column({ type: 'varchar', length: 16 })
  level: string;

  @Column({ type: 'varchar', length: 128 })
  target: string;

  @Column({ name: 'credential_type', type: 'varchar', length: 32 })
  credentialType: string;

  @Column({ name: 'rotate_after_days', type: 'integer', nullable: true })
  rotateAfterDays: number | null;

  @Column({ name: 'warn_before_days', type: 'integer', nullable: true })
  warnBeforeDays: number | null;

  @Column({ type: 'varchar', length: 16, nullable: true })
  rotation: string | null;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMsDate })
  createdAt: Date;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMsDate })
  updatedAt: Date;

  @Column({ name: 'updated_by', type: 'varchar', length: 256 })
  updatedBy: string;

  @Column({ name: 'row_version', type: 'integer' })
  rowVersion: number;
}
