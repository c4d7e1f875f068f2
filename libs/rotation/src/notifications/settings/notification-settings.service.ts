import { Inject, Injectable } from '@nestjs/common';
import { AuditResult, AuditService } from '@app/audit';
import { Clock, TransactionRunner, type OperationContext } from '@app/common';
import { CredentialAlreadyExistsError, CredentialNotFoundError, CredentialsService, CredentialType } from '@app/credentials';
import {
  NOTIFICATION_CLOCK,
  NOTIFICATION_RESOLVED_OPTIONS,
  NOTIFICATION_SETTINGS_AUDIT_ACTION,
  NOTIFICATION_WEBHOOK_SECRET_CONNECTION,
  NOTIFICATION_WEBHOOK_SECRET_INTEGRATION,
} from '../notification.constants';
import { NotificationSecretNotConfiguredError, NotificationSettingsConflictError, NotificationSettingsInvalidError } from '../notification.errors';
import { generateWebhookSecret } from '../../webhooks/standard-webhooks';
import type { ResolvedNotificationOptions } from '../notification.options';
import { assertPublicTarget, parseWebhookUrl, urlOrigin } from '../notifiers/ssrf-guard';
import type { NotificationSettingsEntity } from '../persistence/notification.entities';
import { NotificationSettingsRepository } from '../persistence/notification-settings.repository';
import { liveSigningSecretId } from './live-signing-secret';

export const MAX_EMAIL_RECIPIENTS = 20;
// Deliberately plain: one @, no spaces or angle brackets (header injection), a dotted domain. No control character
// (NUL, C0, DEL, C1) nor lone surrogate either: no SMTP server takes one, so every e-mail to it would fail (`u`: code points).
// eslint-disable-next-line no-control-regex
const EMAIL_PATTERN = /^[^\s@<>,;"()[\]\\\x00-\x1f\x7f-\x9f\uD800-\uDFFF]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/u;

/** A tenant's notification settings as callers see them: never the signing secret itself. */
export interface NotificationSettingsView {
  tenantId: string;
  webhookUrl: string | null;
  webhookSecretConfigured: boolean;
  /** The `webhook_secret` credential holding the signing secret. */
  webhookSecretCredentialId: string | null;
  emailRecipients: string[];
  /** 0 until the first update; pass it as `expectedRowVersion`. */
  rowVersion: number;
  updatedAt: Date | null;
  updatedBy: string | null;
}

export interface UpdateNotificationSettingsInput {
  /** `null` removes the webhook. http(s) only; private/loopback targets refused unless allowed by options. */
  webhookUrl?: string | null;
  /** A new signing secret (`whsec_` + base64 of at least 24 bytes). Mutually exclusive with `generateWebhookSecret`. */
  webhookSecret?: string;
  /** Generate a new signing secret (returned once in the result). Implied when a webhook URL is set and no secret exists. */
  generateWebhookSecret?: boolean;
  /** Replaces the list; `[]` turns e-mail off for the tenant. */
  emailRecipients?: string[];
  /** Compare-and-set: the `rowVersion` last read. */
  expectedRowVersion?: number;
}

export interface UpdateNotificationSettingsResult {
  settings: NotificationSettingsView;
  /** Only when this call generated a secret: show it to the tenant once (it can be read again with `getWebhookSecret`). */
  generatedWebhookSecret?: string;
}

/**
 * Reads and updates a tenant's notification settings (tenant of `ctx` only). The signing secret is a
 * `webhook_secret` credential written through CredentialsService (value store, audited); the settings
 * row and its `notification_settings_change` audit row commit in one transaction. Audit rows name
 * what changed and the webhook's origin — never the full URL (chat webhook URLs embed tokens) or a secret.
 */
@Injectable()
export class NotificationSettingsService {
  constructor(
    @Inject(NOTIFICATION_RESOLVED_OPTIONS) private readonly options: ResolvedNotificationOptions,
    @Inject(NOTIFICATION_CLOCK) private readonly clock: Clock,
    private readonly runner: TransactionRunner,
    private readonly repository: NotificationSettingsRepository,
    private readonly credentials: CredentialsService,
    private readonly audit: AuditService,
  ) {}

  async get(ctx: OperationContext): Promise<NotificationSettingsView> {
    return toView(ctx.tenantId, await this.withLiveSecret(ctx, await this.repository.find(ctx.tenantId)));
  }

  /** The signing secret, read through CredentialsService (so the read is audited there). */
  async getWebhookSecret(ctx: OperationContext): Promise<string> {
    const id = await liveSigningSecretId(this.credentials, ctx, (await this.repository.find(ctx.tenantId))?.webhookSecretCredentialId);
    if (!id) throw new NotificationSecretNotConfiguredError();
    return (await this.credentials.get(ctx, id)).value;
  }

  async update(ctx: OperationContext, input: UpdateNotificationSettingsInput): Promise<UpdateNotificationSettingsResult> {
    const changes = await this.validate(input);
    // One transaction, the settings row locked first: a concurrent update waits, then reads what this one
    // committed. So a stale expectedRowVersion is refused before anything is written, and a signing secret is
    // current exactly when the settings that announce it committed — the secret's own metadata commits in this
    // transaction (its value store write comes first, as CredentialsService does: a rollback orphans it, unread).
    return this.runner.run(async () => {
      const before = await this.withLiveSecret(ctx, await this.repository.findForUpdate(ctx.tenantId));
      if (input.expectedRowVersion !== undefined && input.expectedRowVersion !== (before?.rowVersion ?? 0)) throw new NotificationSettingsConflictError();
      const webhookUrl = changes.webhookUrl !== undefined ? changes.webhookUrl : (before?.webhookUrl ?? null);
      const emailRecipients = changes.emailRecipients ?? before?.emailRecipients ?? [];
      let secret = input.webhookSecret;
      let generated: string | undefined;
      // Implied by a URL this call sets (again) while none exists: not by a save of other fields, which then changes nothing.
      if (!secret && (input.generateWebhookSecret || (changes.webhookUrl && !before?.webhookSecretCredentialId))) {
        secret = generated = generateWebhookSecret();
      }
      // What differs from the stored settings (a given secret always does: it is rotated in).
      const changed = [
        ...(webhookUrl !== (before?.webhookUrl ?? null) ? ['webhookUrl'] : []),
        ...(secret ? ['webhookSecret'] : []),
        ...(!sameList(emailRecipients, before?.emailRecipients ?? []) ? ['emailRecipients'] : []),
      ];
      // Nothing to change: nothing written, rowVersion kept, no audit entry (as un-revoking a credential that is not revoked).
      if (changed.length === 0) return { settings: toView(ctx.tenantId, before) };
      const secretId = secret ? await this.writeSecret(ctx, before?.webhookSecretCredentialId ?? null, secret) : (before?.webhookSecretCredentialId ?? null);
      const now = this.clock.now();
      const row: NotificationSettingsEntity = {
        tenantId: ctx.tenantId,
        webhookUrl,
        webhookSecretCredentialId: secretId,
        emailRecipients,
        rowVersion: (before?.rowVersion ?? 0) + 1,
        createdAt: before?.createdAt ?? now,
        updatedAt: now,
        updatedBy: ctx.actor.id.slice(0, 200),
      };
      // Still a compare-and-set: the first row of a tenant cannot be locked before it exists.
      const ok = before ? await this.repository.update(row, before.rowVersion) : await this.repository.insert(row);
      if (!ok) throw new NotificationSettingsConflictError();
      await this.audit.record({
        action: NOTIFICATION_SETTINGS_AUDIT_ACTION,
        context: ctx,
        resource: `notification-settings:${ctx.tenantId}`,
        result: AuditResult.SUCCESS,
        details: {
          changed,
          webhookOrigin: webhookUrl ? urlOrigin(new URL(webhookUrl)) : null,
          signingCredentialId: secretId,
          emailRecipientCount: row.emailRecipients.length,
          rowVersion: row.rowVersion,
        },
      });
      return { settings: toView(ctx.tenantId, row), ...(generated ? { generatedWebhookSecret: generated } : {}) };
    });
  }

  private async validate(input: UpdateNotificationSettingsInput): Promise<{ webhookUrl?: string | null; emailRecipients?: string[] }> {
    if (input === null || typeof input !== 'object') throw new NotificationSettingsInvalidError('settings must be an object');
    const out: { webhookUrl?: string | null; emailRecipients?: string[] } = {};
    if (input.webhookUrl !== undefined) {
      if (input.webhookUrl === null) out.webhookUrl = null;
      else {
        const url = parseWebhookUrl(input.webhookUrl);
        await assertPublicTarget(url, this.options.webhook.allowPrivateTargets);
        out.webhookUrl = url.toString();
      }
    }
    if (input.webhookSecret !== undefined) {
      if (input.generateWebhookSecret) throw new NotificationSettingsInvalidError('give webhookSecret or generateWebhookSecret, not both', 'webhookSecret');
      if (typeof input.webhookSecret !== 'string' || !input.webhookSecret.startsWith('whsec_')) {
        throw new NotificationSettingsInvalidError('webhookSecret must be whsec_ followed by base64 of at least 24 random bytes', 'webhookSecret');
      }
      this.credentials.validate({ type: CredentialType.WEBHOOK_SECRET, value: input.webhookSecret });
    }
    if (input.emailRecipients !== undefined) {
      const list = input.emailRecipients;
      if (!Array.isArray(list) || list.length > MAX_EMAIL_RECIPIENTS) {
        throw new NotificationSettingsInvalidError(`emailRecipients must be a list of at most ${MAX_EMAIL_RECIPIENTS} addresses`, 'emailRecipients');
      }
      list.forEach((address, i) => {
        if (typeof address !== 'string' || address.length > 254 || !EMAIL_PATTERN.test(address)) {
          throw new NotificationSettingsInvalidError(`emailRecipients[${i}] is not an e-mail address`, `emailRecipients[${i}]`);
        }
      });
      out.emailRecipients = [...new Set(list.map((a) => a.toLowerCase()))];
    }
    return out;
  }

  /** The row as it stands, its signing secret reference dropped when that credential is gone (see liveSigningSecretId). */
  private async withLiveSecret<T extends NotificationSettingsEntity | null>(ctx: OperationContext, row: T): Promise<T> {
    if (!row?.webhookSecretCredentialId) return row;
    return (await liveSigningSecretId(this.credentials, ctx, row.webhookSecretCredentialId)) ? row : { ...row, webhookSecretCredentialId: null };
  }

  /** Rotates the tenant's secret credential, or stores the first one (adopting one a crashed update left behind). */
  private async writeSecret(ctx: OperationContext, existingId: string | null, value: string): Promise<string> {
    if (existingId) {
      try {
        return (await this.credentials.rotate(ctx, existingId, value)).id;
      } catch (e) {
        // Deleted since this save looked (withLiveSecret): none is configured, so this one is the first again.
        if (!(e instanceof CredentialNotFoundError)) throw e;
      }
    }
    try {
      const stored = await this.credentials.store(ctx, {
        integrationId: NOTIFICATION_WEBHOOK_SECRET_INTEGRATION,
        connectionId: NOTIFICATION_WEBHOOK_SECRET_CONNECTION,
        type: CredentialType.WEBHOOK_SECRET,
        value,
        tags: { purpose: 'notification-webhook-signing' },
      });
      return stored.id;
    } catch (e) {
      if (e instanceof CredentialAlreadyExistsError) return (await this.credentials.rotate(ctx, e.existingId, value)).id;
      throw e;
    }
  }
}

function toView(tenantId: string, row: NotificationSettingsEntity | null): NotificationSettingsView {
  return {
    tenantId,
    webhookUrl: row?.webhookUrl ?? null,
    webhookSecretConfigured: !!row?.webhookSecretCredentialId,
    webhookSecretCredentialId: row?.webhookSecretCredentialId ?? null,
    emailRecipients: row?.emailRecipients ?? [],
    rowVersion: row?.rowVersion ?? 0,
    updatedAt: row?.updatedAt ?? null,
    updatedBy: row?.updatedBy ?? null,
  };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
