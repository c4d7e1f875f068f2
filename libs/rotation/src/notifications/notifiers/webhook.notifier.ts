import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { Inject, Injectable } from '@nestjs/common';
import { Clock, systemContext } from '@app/common';
import { CredentialsService } from '@app/credentials';
import { NOTIFICATION_CLOCK, NOTIFICATION_RESOLVED_OPTIONS, NOTIFICATION_SYSTEM_JOB } from '../notification.constants';
import { NotificationDeliveryFailedError, NotificationSecretNotConfiguredError, NotificationTargetForbiddenError } from '../notification.errors';
import type { ResolvedNotificationOptions } from '../notification.options';
import { NotificationChannels } from '../notification.options';
import type { Notification, Notifier, NotifierOutcome } from '../notification.types';
import { NotificationSettingsRepository } from '../persistence/notification-settings.repository';
import { servableSigningSecretId } from '../settings/live-signing-secret';
import { guardedLookup, isPrivateAddress, parseWebhookUrl, urlHost } from './ssrf-guard';
import { standardWebhookHeaders } from './standard-webhook-signature';

/** The JSON body of an outbound notification webhook (Standard Webhooks' `{type, timestamp, data}`). */
export interface NotificationWebhookBody {
  type: string;
  timestamp: string;
  data: {
    eventId: string;
    tenantId: string;
    subject: string;
    summary: string;
    action: string;
  } & Notification['facts'];
}

export function notificationWebhookBody(n: Notification): NotificationWebhookBody {
  return {
    type: n.event,
    timestamp: n.occurredAt.toISOString(),
    data: { eventId: n.eventId, tenantId: n.tenantId, subject: n.subject, summary: n.summary, action: n.action, ...n.facts },
  };
}

/**
 * POSTs each notification to the tenant's webhook URL, signed per Standard Webhooks with the tenant's
 * `webhook_secret` credential (`webhook-id` = the event id, so receivers can de-duplicate a resend).
 * 2xx = delivered; anything else, a redirect included, is a failure: a redirect or a 4xx other than
 * 408/429 is a permanent refusal (given up at once), the rest is retried. The SSRF guard refuses
 * private targets unless `webhook.allowPrivateTargets`.
 */
@Injectable()
export class WebhookNotifier implements Notifier {
  readonly channel = NotificationChannels.WEBHOOK;

  constructor(
    @Inject(NOTIFICATION_RESOLVED_OPTIONS) private readonly options: ResolvedNotificationOptions,
    @Inject(NOTIFICATION_CLOCK) private readonly clock: Clock,
    private readonly settings: NotificationSettingsRepository,
    private readonly credentials: CredentialsService,
  ) {}

  async send(n: Notification): Promise<NotifierOutcome> {
    const settings = await this.settings.find(n.tenantId);
    if (!settings?.webhookUrl) return 'not_configured';
    const url = parseWebhookUrl(settings.webhookUrl);
    // Never sent unsigned; retrying cannot help until the tenant sets a secret. One deleted, revoked or expired is none:
    // not read (each attempt a denied read row, suspicious activity of system:notifications).
    const ctx = systemContext(n.tenantId, NOTIFICATION_SYSTEM_JOB);
    const secretId = await servableSigningSecretId(this.credentials, ctx, settings.webhookSecretCredentialId);
    if (!secretId) throw new NotificationSecretNotConfiguredError();
    const secret = (await this.credentials.get(ctx, secretId)).value;
    const body = JSON.stringify(notificationWebhookBody(n));
    const headers = standardWebhookHeaders(secret, n.eventId, Math.floor(this.clock.now().getTime() / 1000), body);
    const { status, retryAfter } = await this.post(url, body, headers);
    if (status < 200 || status > 299) {
      throw new NotificationDeliveryFailedError(this.channel, `http ${status}`, {
        retryAfterMs: retryAfterMs(retryAfter, this.clock.now().getTime()),
        permanent: isPermanentRefusal(status),
      });
    }
    return 'delivered';
  }

  private post(url: URL, body: string, signed: Record<string, string>): Promise<{ status: number; retryAfter?: string }> {
    const { allowPrivateTargets, timeoutMs, userAgent } = this.options.webhook;
    const host = urlHost(url);
    // IP literals never go through `lookup`, so they are checked here.
    if (isIP(host) && !allowPrivateTargets && isPrivateAddress(host)) return Promise.reject(new NotificationTargetForbiddenError());
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<{ status: number; retryAfter?: string }>((resolve, reject) => {
      let settled = false;
      const done = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn();
      };
      const req = send(
        url,
        {
          method: 'POST',
          lookup: guardedLookup(allowPrivateTargets),
          headers: { ...signed, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': userAgent },
        },
        (res: IncomingMessage) => {
          // Only the status counts, so the body is never read: waiting for its end let a receiver that
          // answered 2xx and then streamed slowly (or a lot) turn its delivery into a timeout and resends.
          done(() => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }));
          res.destroy();
        },
      );
      // One bound for the whole exchange (connect, send, response), not per socket event.
      const timer = setTimeout(() => {
        done(() => reject(new NotificationDeliveryFailedError(this.channel, 'timeout')));
        req.destroy();
      }, timeoutMs);
      req.on('error', (e) =>
        done(() => reject(e instanceof NotificationTargetForbiddenError ? e : new NotificationDeliveryFailedError(this.channel, networkReason(e), { cause: e }))),
      );
      req.end(body);
    });
  }
}

/**
 * A status that the same request will get again: a redirect (never followed — it would POST the signed
 * body to a target the SSRF check never saw) or a 4xx other than 408 (Request Timeout) and 429 (Too Many
 * Requests). 5xx and the rest are the receiver's passing trouble.
 */
function isPermanentRefusal(status: number): boolean {
  return (status >= 300 && status <= 399) || (status >= 400 && status <= 499 && status !== 408 && status !== 429);
}

/** A `Retry-After` (seconds, or an HTTP date) as milliseconds from `nowMs`; undefined when absent or unreadable. */
function retryAfterMs(header: string | undefined, nowMs: number): number | undefined {
  if (!header) return undefined;
  const ms = /^\d{1,10}$/.test(header.trim()) ? Number(header.trim()) * 1000 : Date.parse(header) - nowMs;
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/** A network failure's code only (`ECONNREFUSED`), never its message (it quotes the address). */
function networkReason(e: unknown): string {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : 'network error';
}
