import { epochMsDate } from '@app/common';
import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * The dedupe key of every notice the jobs raise: one row per (credential, version, notice), written in
 * the transaction of its outbox event, so a notice is raised once ever — not once per run — and a
 * crash leaves neither the row nor the event. `notice`: `expiry:30d@<expiry, s>`, `expired@<expiry, s>`, `rotation_due`...
 * `event_id` is null for a threshold passed over by a tighter one in the same run (no event sent).
 */
@Entity({ name: 'cv_rotation_notices' })
@Index('IDX_cv_rotation_notices_tenant', ['tenantId', 'createdAt'])
export class RotationNoticeEntity {
  @PrimaryColumn({ name: 'credential_id', type: 'varchar', length: 36 })
  credentialId: string;

  @PrimaryColumn({ type: 'integer' })
  version: number;

  @PrimaryColumn({ type: 'varchar', length: 32 })
  notice: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 128 })
  tenantId: string;

  @Column({ name: 'event_id', type: 'varchar', length: 36, nullable: true })
  eventId: string | null;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMsDate })
  createdAt: Date;
}
