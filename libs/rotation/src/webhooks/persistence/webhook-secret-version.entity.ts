import { epochMsDate } from '@app/common';
import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * Lifecycle of one webhook secret version:
 * `pending` (written, not yet pushed/served) → `current` (signs) → `live` (verifies until `liveUntil`) → `retired`.
 * A failed or interrupted rotation leaves its row `pending`; the next attempt resumes it.
 */
export enum WebhookSecretState {
  PENDING = 'pending',
  CURRENT = 'current',
  LIVE = 'live',
  RETIRED = 'retired',
}

/**
 * One version of a connection's webhook secret. NEVER holds a value: the current and live values are
 * versions of the webhook_secret credential (`credentialVersion`); a pending value is a separate
 * staging credential (`stagingCredentialId`) until it becomes current. At most one `current` and one
 * `pending` row per credential (partial unique indexes), so two rotations can never both commit.
 */
@Entity({ name: 'cv_webhook_secret_versions' })
@Index('UQ_cv_whs_versions_current', ['credentialId'], { unique: true, where: `"state" = 'current'` })
@Index('UQ_cv_whs_versions_pending', ['credentialId'], { unique: true, where: `"state" = 'pending'` })
@Index('IDX_cv_whs_versions_credential', ['credentialId', 'state'])
@Index('IDX_cv_whs_versions_state_live_until', ['state', 'liveUntil'])
export class WebhookSecretVersionEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 128 })
  tenantId: string;

  @Column({ name: 'integration_id', type: 'varchar', length: 128 })
  integrationId: string;

  @Column({ name: 'connection_id', type: 'varchar', length: 128 })
  connectionId: string;

  /** The webhook_secret credential. */
  @Column({ name: 'credential_id', type: 'varchar', length: 36 })
  credentialId: string;

  /** Its version holding this secret; null while pending. */
  @Column({ name: 'credential_version', type: 'integer', nullable: true })
  credentialVersion: number | null;

  @Column({ type: 'varchar', length: 16 })
  state: WebhookSecretState;

  /** Pending only: the staging credential holding the value until it is promoted (then deleted). */
  @Column({ name: 'staging_credential_id', type: 'varchar', length: 36, nullable: true })
  stagingCredentialId: string | null;

  /** When it became current (drives "rotate after"). */
  @Column({ name: 'current_since', type: 'bigint', nullable: true, transformer: epochMsDate })
  currentSince: Date | null;

  /** Live only: verification with it stops at this instant. */
  @Column({ name: 'live_until', type: 'bigint', nullable: true, transformer: epochMsDate })
  liveUntil: Date | null;

  /** Pending only: first push to the provider started; from then on the provider may sign with it. */
  @Column({ name: 'push_started_at', type: 'bigint', nullable: true, transformer: epochMsDate })
  pushStartedAt: Date | null;

  /**
   * Pending only: the credential's `rowVersion` the rotation was prepared over (read under its rotation lock). A revoke's
   * event (its `rowVersion`) tells by it a successor staged before the revoke from one staged after an un-revoke,
   * whatever the replicas' clocks say; null on rows an older release wrote (the event's time decides then).
   */
  @Column({ name: 'staged_over_row_version', type: 'integer', nullable: true })
  stagedOverRowVersion: number | null;

  /** Failed push attempts of a pending row. */
  @Column({ type: 'integer', default: 0 })
  attempts: number;

  /** Name and code of the last failure (never a message: it might quote data). */
  @Column({ name: 'last_error', type: 'varchar', length: 200, nullable: true })
  lastError: string | null;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMsDate })
  createdAt: Date;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMsDate })
  updatedAt: Date;
}
