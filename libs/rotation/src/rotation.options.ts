import { booleanOption, Clock, clockOptionSchema, cronExpressionSchema, describeProblems, integerInRange, listingProtoKey, MUST_BE_AN_OBJECT, resolveOptions, timeZoneSchema, whenFieldsParsed, whenWrongType } from '@app/common';
import { CREDENTIAL_TYPES, type CredentialType } from '@app/credentials';
import { z } from 'zod';
import { RotationConfigurationError } from './errors/rotation.errors';
import type { RotationHandlerRegistration } from './handlers/rotation-handler';
import { DEFAULT_ROTATION_POLICIES, ROTATION_MODES, type PolicyValues } from './policies/rotation-policy.types';
import { checkSendWait, notificationOptionsSchema, type NotificationHostOptions, type NotificationOptions, type ResolvedNotificationOptions } from './notifications/notification.options';
import { webhookSecretsOptionsSchema, type ResolvedWebhookSecretsOptions, type WebhookSecretsOptions } from './webhooks/webhook-secrets.options';

/** A scheduled job of the lib. */
export interface RotationJobOptions {
  /** Register the cron job (needs ScheduleModule.forRoot() in the host). @default true */
  enabled?: boolean;
  /** Cron expression (6 fields allowed: seconds first). */
  cronTime?: string;
  /** IANA time zone of `cronTime`. @default 'UTC' (as every job's: not the process's local zone) */
  timeZone?: string;
  /** Name of the job (SchedulerRegistry, logs, metrics, health). */
  jobName?: string;
  /** Credentials read per page. 1..1000. @default 200 */
  batchSize?: number;
}

/** Rules of generated passwords (basic-auth passwords rotated without a handler). */
export interface PasswordPolicyOptions {
  /** 12..256. @default 32 */
  length?: number;
  /** Include each of lower, upper, digits, symbols at least once. @default true */
  symbols?: boolean;
}

export interface RotationModuleOptions {
  /**
   * Override the built-in default policy of a credential type (the tenant/integration/credential overrides are in the
   * database), keyed by its string value (`api_key`, or `[CredentialType.API_KEY]`: the same key).
   */
  defaults?: Partial<Record<`${CredentialType}`, Partial<PolicyValues>>>;
  /** Warns about credentials entering 30/14/7/1 days before expiry (limited to the policy's `warnBeforeDays`) and marks expired ones. @default hourly */
  expiryMonitor?: RotationJobOptions & {
    /** Thresholds in days, each fires once per credential version. @default [30, 14, 7, 1] */
    thresholdsDays?: number[];
  };
  /** Reports manual rotations that fell due and performs automatic ones. @default daily at 03:00 */
  rotationCheck?: RotationJobOptions & {
    /** Upper bound of automatic rotations in one run (the next run continues). @default 1000 */
    maxRotationsPerRun?: number;
  };
  /** Handlers that mint new values at providers (more can be registered with `RotationHandlerRegistry`). @default [] */
  handlers?: RotationHandlerRegistration[];
  /** Generated basic-auth passwords. */
  passwordPolicy?: PasswordPolicyOptions;
  /** Webhook secrets (two-phase rotation, overlap, its job); problems are listed as `webhooks.…`. */
  webhooks?: WebhookSecretsOptions;
  /** Notifications of the lib's events (bus, outbound webhook, e-mail); problems are listed as `notifications.…`. */
  notifications?: NotificationOptions;
  /**
   * Time source (tests pass a ManualClock, the same one CredentialsModule gets).
   * @default the host's global `Clock` provider if any, else the system clock
   */
  clock?: Clock;
}

interface ResolvedJob {
  enabled: boolean;
  cronTime: string;
  timeZone?: string;
  jobName: string;
  batchSize: number;
}

export interface ResolvedRotationOptions {
  defaults: Record<CredentialType, PolicyValues>;
  expiryMonitor: ResolvedJob & { thresholdsDays: number[] };
  rotationCheck: ResolvedJob & { maxRotationsPerRun: number };
  handlers: RotationHandlerRegistration[];
  passwordPolicy: Required<PasswordPolicyOptions>;
  webhooks: ResolvedWebhookSecretsOptions;
  notifications: ResolvedNotificationOptions;
  clock?: Clock;
}

const int = (min: number, max: number) => integerInRange(min, max);
const days = int(0, 3650);

const job = (cron: string, name: string) => ({
  enabled: booleanOption().default(true),
  cronTime: cronExpressionSchema(`must be a cron expression with 5 or 6 fields, e.g. "${cron}"`).default(cron),
  timeZone: timeZoneSchema().optional(),
  jobName: z.string({ error: 'must be a non-empty string' }).min(1, 'must be a non-empty string').default(name),
  batchSize: int(1, 1000).default(200),
});

const policyValues = z
  .object({
    rotateAfterDays: days.optional(),
    warnBeforeDays: days.optional(),
    rotation: z.enum(ROTATION_MODES as [string, ...string[]], { error: `must be one of ${ROTATION_MODES.join(', ')}` }).optional(),
  }, MUST_BE_AN_OBJECT)
  .strict();

const schema = z.object({
  defaults: listingProtoKey(
    z.partialRecord(z.enum(CREDENTIAL_TYPES as [string, ...string[]], { error: `keys must be credential types (${CREDENTIAL_TYPES.join(', ')})` }), policyValues, whenWrongType('must be an object of credential type → policy')),
  ).optional(),
  expiryMonitor: z
    .object({
      ...job('0 0 * * * *', 'rotation-expiry-monitor'),
      thresholdsDays: z.array(int(1, 3650), whenWrongType('must list at least one threshold')).min(1, 'must list at least one threshold').default([30, 14, 7, 1]),
    }, MUST_BE_AN_OBJECT)
    .strict()
    .prefault({}),
  rotationCheck: z
    .object({ ...job('0 0 3 * * *', 'rotation-check'), maxRotationsPerRun: int(1, 1_000_000).default(1000) }, MUST_BE_AN_OBJECT)
    .strict()
    .prefault({}),
  handlers: z
    .array(
      z.custom<RotationHandlerRegistration>(
        (h) => typeof h === 'object' && h !== null && typeof (h as RotationHandlerRegistration).handler?.mint === 'function' && !!((h as RotationHandlerRegistration).integrationId || (h as RotationHandlerRegistration).type),
        { error: 'each must be { integrationId? , type?, handler: { mint() } } with an integrationId or a type' },
      ).refine((h) => h.type == null || CREDENTIAL_TYPES.includes(h.type as CredentialType), { error: `type must be one of ${CREDENTIAL_TYPES.join(', ')}` }),
      whenWrongType('must be a list of handler registrations'),
    )
    .default([]),
  passwordPolicy: z
    .object({ length: int(12, 256).default(32), symbols: booleanOption().default(true) }, MUST_BE_AN_OBJECT)
    .strict()
    .prefault({}),
  // The parts' own schemas, nested: one pass, so one error lists the problems of every part.
  webhooks: webhookSecretsOptionsSchema,
  notifications: notificationOptionsSchema.prefault({}),
  clock: clockOptionSchema().optional(),
}, MUST_BE_AN_OBJECT).strict();

/**
 * Merges defaults and validates once; the error lists every problem and how to fix it. With `host` (the
 * host's dispatching outbox), the notifications' `sendWaitMs` is checked against it in the same pass.
 */
export function resolveRotationOptions(options: RotationModuleOptions = {}, host?: NotificationHostOptions): ResolvedRotationOptions {
  const o = resolveOptions(
    host ? schema.superRefine((r, ctx) => checkSendWait(r.notifications, host, ctx, ['notifications']), whenFieldsParsed('notifications.enabled', 'notifications.sendWaitMs')) : schema,
    options,
    (problems) => new RotationConfigurationError(`Invalid RotationModule options:\n  - ${describeProblems(problems).join('\n  - ')}`),
  );
  const defaults = Object.fromEntries(
    CREDENTIAL_TYPES.map((t) => [t, { ...DEFAULT_ROTATION_POLICIES[t], ...(o.defaults?.[t] as Partial<PolicyValues> | undefined) }]),
  ) as Record<CredentialType, PolicyValues>;
  const thresholdsDays = [...new Set(o.expiryMonitor.thresholdsDays)].sort((a, b) => b - a);
  return { ...o, defaults, expiryMonitor: { ...o.expiryMonitor, thresholdsDays } } as ResolvedRotationOptions;
}
