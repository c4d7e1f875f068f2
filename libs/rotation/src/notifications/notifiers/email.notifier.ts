import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { createTransport, type Transporter } from 'nodemailer';
import { NOTIFICATION_RESOLVED_OPTIONS } from '../notification.constants';
import { NotificationDeliveryFailedError } from '../notification.errors';
import { notificationText } from '../notification-message';
import type { ResolvedNotificationOptions } from '../notification.options';
import { NotificationChannels } from '../notification.options';
import type { Notification, Notifier, NotifierOutcome } from '../notification.types';
import { NotificationSettingsRepository } from '../persistence/notification-settings.repository';

/**
 * E-mail over SMTP (nodemailer) to the tenant's recipients. One message per event to all recipients;
 * its Message-ID derives from the event id, so a resend after a crash threads as the same message.
 */
@Injectable()
export class EmailNotifier implements Notifier, OnModuleDestroy {
  readonly channel = NotificationChannels.EMAIL;
  private transport?: Transporter;

  constructor(
    @Inject(NOTIFICATION_RESOLVED_OPTIONS) private readonly options: ResolvedNotificationOptions,
    private readonly settings: NotificationSettingsRepository,
  ) {}

  async send(n: Notification): Promise<NotifierOutcome> {
    const recipients = (await this.settings.find(n.tenantId))?.emailRecipients ?? [];
    if (recipients.length === 0) return 'not_configured';
    const { from, subjectPrefix, timeoutMs } = this.options.email;
    // One bound for the whole send, as for webhooks: nodemailer's socketTimeout only bounds silence, so a
    // server answering a byte at a time held the send past its lease (a second attempt then sent the
    // same e-mail alongside) and held shutdown, indefinitely. Aborting closes the connection.
    const deadline = AbortSignal.timeout(timeoutMs);
    try {
      await this.mailer().sendMail({
        from,
        to: recipients,
        subject: subjectPrefix ? `${subjectPrefix} ${n.subject}` : n.subject,
        text: notificationText(n),
        messageId: `<${n.eventId}.notification@credential-vault>`,
        headers: { 'X-Credential-Vault-Event': n.event, 'X-Credential-Vault-Event-Id': n.eventId },
        signal: deadline,
      });
    } catch (e) {
      const timedOut = deadline.aborted;
      throw new NotificationDeliveryFailedError(this.channel, timedOut ? 'timeout' : smtpReason(e), { cause: e, permanent: !timedOut && isPermanentSmtpReply(e) });
    }
    return 'delivered';
  }

  onModuleDestroy(): void {
    this.transport?.close();
  }

  private mailer(): Transporter {
    if (this.transport) return this.transport;
    const o = this.options.email;
    this.transport = createTransport({
      host: o.host,
      port: o.port,
      secure: o.secure,
      requireTLS: o.requireTLS,
      ignoreTLS: o.ignoreTLS,
      auth: o.auth ? { user: o.auth.user, pass: o.auth.pass } : undefined,
      connectionTimeout: o.timeoutMs,
      greetingTimeout: o.timeoutMs,
      socketTimeout: o.timeoutMs,
      tls: o.caCertPem ? { ca: o.caCertPem } : undefined,
      logger: false, // nodemailer's logger would print message contents and AUTH exchanges
      debug: false,
    });
    return this.transport;
  }
}

/**
 * A 5xx reply is the server's permanent refusal (RFC 5321 4.2.1: do not repeat the same command): a
 * mailbox that does not exist (550), a failed login (535), a message refused. 4xx replies are temporary.
 */
function isPermanentSmtpReply(e: unknown): boolean {
  const code = (e as { responseCode?: unknown })?.responseCode;
  return typeof code === 'number' && code >= 500 && code <= 599;
}

/** The SMTP response code or error code, never the server's text (it may quote addresses or data). */
function smtpReason(e: unknown): string {
  const err = e as { responseCode?: unknown; code?: unknown };
  if (typeof err?.responseCode === 'number') return `smtp ${err.responseCode}`;
  return typeof err?.code === 'string' && /^[A-Z0-9_]{1,40}$/.test(err.code) ? err.code : 'smtp error';
}
