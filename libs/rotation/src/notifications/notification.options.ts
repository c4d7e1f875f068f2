import {
  booleanOption,
  describeProblems,
  integerInRange,
  listingProtoKey,
  MUST_BE_AN_OBJECT,
  resolveOptions,
  whenFieldsParsed,
  type ResolvedPersistenceOptions,
} from '@app/common';
import { z } from 'zod';
import { NotificationConfigurationError } from './notification.errors';

/** The outbox events that can notify (emitted by the rotation lib's other parts). Payloads: ids + metadata. */
export const NotificationEvents = {
  EXPIRING: 'credential.expiring',
  EXPIRED: 'credential.expired',
  ROTATION_DUE: 'credential.rotation_due',
  ROTATED: 'credential.rotated',
  /** An automatic rotation failed (the previous value stays current). */
  ROTATION_FAILED: 'credential.rotation_failed',
  REVOKED: 'credential.revoked',
  UNREVOKED: 'credential.unrevoked',
  WEBHOOK_SECRET_ROTATED: 'webhook_secret.rotated',
  WEBHOOK_SECRET_ROTATION_FAILED: 'webhook_secret.rotation_failed',
  /** A webhook secret fell due and its integration has no updater: an operator stages and activates a new one. */
  WEBHOOK_SECRET_ROTATION_DUE: 'webhook_secret.rotation_due',
} as const;
export type NotificationEventName = (typeof NotificationEvents)[keyof typeof NotificationEvents];
export const NOTIFICATION_EVENT_NAMES = Object.values(NotificationEvents) as [NotificationEventName, ...NotificationEventName[]];

/** The built-in channels; each (event id, channel) is delivered at most once. */
export const NotificationChannels = { BUS: 'bus', WEBHOOK: 'webhook', EMAIL: 'email' } as const;

const ms = (min: number, max: number) => integerInRange(min, max, { unit: 'of milliseconds' });
const positiveMs = (max: number) => ms(1, max);
/** A string of `min`..`max` characters. */
const text = (min: number, max: number) => {
  const message = min > 0 ? `must be a string of ${min}..${max} characters` : `must be a string of at most ${max} characters`;
  return z.string({ error: message }).min(min, message).max(max, message);
};
const nonEmpty = () => z.string({ error: 'must be a non-empty string' }).min(1, 'must be a non-empty string');
const EVENTS_WANTED = `must list events among ${NOTIFICATION_EVENT_NAMES.join(', ')}`;

/** `sendWaitMs` by default. */
export const DEFAULT_NOTIFICATION_SEND_WAIT_MS = 1000;
/**
 * What the notification handler needs of the outbox's `handlerTimeoutMs` beyond `sendWaitMs`: its
 * delivery rows are inserted, read and claimed before the wait starts (behind other writers on SQLite).
 */
export const NOTIFICATION_SEND_WAIT_HEADROOM_MS = 1000;

/**
 * The `notifications` key of RotationModule's options. Defaults: every event above notifies, the bus
 * and webhook channels are on, e-mail is off until `email.host` and `email.from` are set.
 */
export const notificationOptionsSchema = z
  .object({
    /** Master switch: off registers no outbox handler. */
    enabled: booleanOption().default(true),
    /** Which outbox events notify. */
    events: z.array(z.enum(NOTIFICATION_EVENT_NAMES, { error: EVENTS_WANTED }), { error: EVENTS_WANTED }).default([...NOTIFICATION_EVENT_NAMES]),
    /**
     * Credential types whose events do not notify, per event. CredentialsService emits
     * `credential.rotated` for every rotation, and a token refresh rotates OAuth tokens every hour.
     */
    mutedTypes: listingProtoKey(z.partialRecord(z.enum(NOTIFICATION_EVENT_NAMES), z.array(text(1, 64), { error: 'must be an array of credential types' }), MUST_BE_AN_OBJECT)).default({
      [NotificationEvents.ROTATED]: ['oauth_access_token', 'oauth_refresh_token'],
    }),
    /**
     * Per channel and event: attempts (first one included) before the channel is given up; the
     * outbox's own backoff spaces the redeliveries, and `baseMs`·2^(n-1) up to `maxMs` is the least
     * wait before the next attempt of a failed channel.
     */
    retry: z
      .object({
        maxAttempts: integerInRange(1, 20).default(5),
        baseMs: positiveMs(86_400_000).default(30_000),
        maxMs: positiveMs(86_400_000).default(3_600_000),
        /**
         * How long an attempt in flight keeps other deliveries of the same event (another replica, a
         * redelivery) off its channel; longer than any send can take. After a crash mid-send the
         * channel is retried once it runs out.
         */
        leaseMs: ms(1000, 86_400_000).default(60_000),
      }, MUST_BE_AN_OBJECT)
      .strict()
      .default({ maxAttempts: 5, baseMs: 30_000, maxMs: 3_600_000, leaseMs: 60_000 }),
    /**
     * Finished delivery rows are deleted this long after they finished, unless their outbox event is
     * still undelivered (it could come again). At most one prune per `pruneEveryMs`.
     */
    retentionMs: ms(3_600_000, 3650 * 86_400_000).default(30 * 86_400_000),
    /**
     * How long the outbox's delivery of an event waits for a channel's send. A send still running then
     * finishes in the background (its delivery row records the outcome) and the outbox comes back for the
     * event later: one tenant's slow or hanging receiver must not hold up the events queued behind it
     * (the outbox delivers one event at a time), other tenants' included. At least
     * `NOTIFICATION_SEND_WAIT_HEADROOM_MS` less than the dispatching outbox's `handlerTimeoutMs`, which
     * bounds the whole handler (checked when the host's PersistenceModule is known).
     */
    sendWaitMs: ms(0, 120_000).default(DEFAULT_NOTIFICATION_SEND_WAIT_MS),
    pruneEveryMs: ms(1000, 30 * 86_400_000).default(600_000),
    bus: z
      .object({
        enabled: booleanOption().default(true),
        /** The EventEmitter2 event carrying each `Notification`. */
        eventName: text(1, 128).default('rotation.notification'),
      }, MUST_BE_AN_OBJECT)
      .strict()
      .default({ enabled: true, eventName: 'rotation.notification' }),
    webhook: z
      .object({
        enabled: booleanOption().default(true),
        /** One POST, connect to last byte. */
        timeoutMs: positiveMs(120_000).default(10_000),
        /** Tests and private networks only: allow loopback, private and link-local targets (SSRF guard off). */
        allowPrivateTargets: booleanOption().default(false),
        userAgent: text(1, 200).default('credential-vault-notifications/1'),
      }, MUST_BE_AN_OBJECT)
      .strict()
      .default({ enabled: true, timeoutMs: 10_000, allowPrivateTargets: false, userAgent: 'credential-vault-notifications/1' }),
    email: z
      .object({
        enabled: booleanOption().default(false),
        host: text(1, 255).optional(),
        port: integerInRange(1, 65_535).default(587),
        /** TLS from the first byte (port 465); otherwise STARTTLS when the server offers it. */
        secure: booleanOption().default(false),
        /** Fail unless STARTTLS succeeds. */
        requireTLS: booleanOption().default(false),
        /** Never STARTTLS (a local relay or a test server). */
        ignoreTLS: booleanOption().default(false),
        auth: z.object({ user: nonEmpty(), pass: nonEmpty() }, MUST_BE_AN_OBJECT).strict().optional(),
        from: text(3, 320).optional(),
        /** Bounds each connection phase and the whole send (connect to the server's last answer). */
        timeoutMs: positiveMs(120_000).default(10_000),
        subjectPrefix: text(0, 64).default('[Credential Vault]'),
        /** PEM CA to trust for the SMTP server's certificate. */
        caCertPem: z.string({ error: 'must be a PEM string' }).optional(),
      }, MUST_BE_AN_OBJECT)
      .strict()
      .default({ enabled: false, port: 587, secure: false, requireTLS: false, ignoreTLS: false, timeoutMs: 10_000, subjectPrefix: '[Credential Vault]' })
      .superRefine((email, ctx) => {
        if (!email.enabled) return;
        if (!email.host) ctx.addIssue({ code: 'custom', path: ['host'], message: 'is required when e-mail is enabled' });
        if (!email.from) ctx.addIssue({ code: 'custom', path: ['from'], message: 'is required when e-mail is enabled' });
      }, whenFieldsParsed('enabled', 'host', 'from')),
  }, MUST_BE_AN_OBJECT)
  .strict()
  .superRefine((o, ctx) => {
    if (o.retry.baseMs > o.retry.maxMs) ctx.addIssue({ code: 'custom', path: ['retry', 'baseMs'], message: 'must not exceed retry.maxMs' });
    for (const [channel, timeoutMs] of [['webhook', o.webhook.timeoutMs], ['email', o.email.timeoutMs]] as const) {
      if (timeoutMs >= o.retry.leaseMs) ctx.addIssue({ code: 'custom', path: ['retry', 'leaseMs'], message: `must exceed ${channel}.timeoutMs` });
    }
  }, whenFieldsParsed('retry.baseMs', 'retry.maxMs', 'retry.leaseMs', 'webhook.timeoutMs', 'email.timeoutMs'));

/** What a host passes under `notifications` (every field optional). */
export type NotificationOptions = z.input<typeof notificationOptionsSchema>;
/** After defaults. */
export type ResolvedNotificationOptions = z.output<typeof notificationOptionsSchema>;

/** What the notification options are checked against in the host: its dispatching outbox (PersistenceModule). */
export interface NotificationHostOptions {
  /** The outbox's `handlerTimeoutMs` when this process dispatches; undefined skips the check. */
  outboxHandlerTimeoutMs?: number;
}

/** From the host's PersistenceModule options: only a process that dispatches the outbox runs the handler. */
export function notificationHostOptions(persistence?: ResolvedPersistenceOptions): NotificationHostOptions | undefined {
  return persistence?.outbox.dispatch ? { outboxHandlerTimeoutMs: persistence.outbox.handlerTimeoutMs } : undefined;
}

/**
 * `sendWaitMs` against the outbox's `handlerTimeoutMs`: the outbox stops waiting for the handler then
 * (not cancelling it), records an ETIMEDOUT failure with a warning and redelivers after its backoff. A
 * wait that can run into that bound never takes effect: every slow send becomes an outbox failure, and
 * the handler's late result is lost (its redelivery then counts the finished channel as a `duplicate`).
 */
export function checkSendWait(o: { enabled: boolean; sendWaitMs: number }, host: NotificationHostOptions | undefined, ctx: z.core.$RefinementCtx, path: PropertyKey[]): void {
  const limit = host?.outboxHandlerTimeoutMs;
  if (!o.enabled || limit === undefined || o.sendWaitMs + NOTIFICATION_SEND_WAIT_HEADROOM_MS <= limit) return;
  ctx.addIssue({
    code: 'custom',
    path: [...path, 'sendWaitMs'],
    message: `must be at least ${NOTIFICATION_SEND_WAIT_HEADROOM_MS} ms less than the outbox's handlerTimeoutMs (PersistenceModule), which bounds the whole notification handler: a longer wait never takes effect, each slow send times out in the outbox instead`,
  });
}

/**
 * Validates once, at bootstrap; one `NotificationConfigurationError` (3201) lists every problem, never a
 * value. With `host`, also against the host's outbox (`checkSendWait`).
 */
export function resolveNotificationOptions(input?: NotificationOptions, host?: NotificationHostOptions): ResolvedNotificationOptions {
  const schema = host ? notificationOptionsSchema.superRefine((o, ctx) => checkSendWait(o, host, ctx, []), whenFieldsParsed('enabled', 'sendWaitMs')) : notificationOptionsSchema;
  return resolveOptions(schema, input ?? {}, (problems) => new NotificationConfigurationError(describeProblems(problems)));
}

/** Least wait before attempt `attempt + 1` of a failed channel. */
export function retryDelayMs(retry: ResolvedNotificationOptions['retry'], attempt: number): number {
  return Math.min(retry.maxMs, retry.baseMs * 2 ** Math.max(0, attempt - 1));
}
