import { epochMsDate, jsonText } from '@app/common';
import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * One row per (outbox event, channel): the de-duplication key of notifications. A redelivered event
 * finds its row delivered/skipped/given up and sends nothing again.
 */
@Entity({ name: 'cv_notification_deliveries' })
@Index('IDX_cv_notification_deliveries_tenant', ['tenantId', 'createdAt'])
@Index('IDX_cv_notification_deliveries_status', ['status'])
@Index('IDX_cv_notification_deliveries_finished', ['finishedAt'])
export class NotificationDeliveryEntity {
  @PrimaryColumn({ name: 'event_id', type: 'varchar', length: 36 })
  eventId: string;

  @PrimaryColumn({ type: 'varchar', length: 32 })
  channel: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 128 })
  tenantId: string;

  @Column({ name: 'event_name', type: 'varchar', length: 128 })
  eventName: string;

  /** `NotificationDeliveryStatus`. */
  @Column({ type: 'varchar', length: 16 })
  status: string;

  /** Attempts started so far (a claim counts, so a crash mid-send still uses up an attempt). */
  @Column({ type: 'integer', default: 0 })
  attempts: number;

  /** Not before: the backoff of a failed channel, and the lease of an attempt in flight. */
  @Column({ name: 'next_attempt_at', type: 'bigint', transformer: epochMsDate })
  nextAttemptAt: Date;

  /** Name/code of the last failure, never its message. */
  @Column({ name: 'last_error', type: 'varchar', length: 200, nullable: true })
  lastError: string | null;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMsDate })
  createdAt: Date;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMsDate })
  updatedAt: Date;

  @Column({ name: 'finished_at', type: 'bigint', nullable: true, transformer: epochMsDate })
  finishedAt: Date | null;
}

/**
 * A tenant's notification settings. The webhook signing secret is NOT here: it is a `webhook_secret`
 * credential (CredentialsService), referenced by id.
 */
@Entity({ name: 'cv_notification_settings' })
export class NotificationSettingsEntity {
  @PrimaryColumn({ name: 'tenant_id', type: 'varchar', length: 128 })
  tenantId: string;

  @Column({ name: 'webhook_url', type: 'varchar', length: 2048, nullable: true })
  webhookUrl: string | null;

  @Column({ name: 'webhook_secret_credential_id', type: 'varchar', length: 36, nullable: true })
  webhookSecretCredentialId: string | null;

  /** JSON array of addresses. */
  @Column({ name: 'email_recipients', type: 'text', transformer: jsonText })
  emailRecipients: string[];

  @Column({ name: 'row_version', type: 'integer', default: 1 })
  rowVersion: number;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMsDate })
  createdAt: Date;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMsDate })
  updatedAt: Date;

  @Column({ name: 'updated_by', type: 'varchar', length: 200 })
  updatedBy: string;
}
