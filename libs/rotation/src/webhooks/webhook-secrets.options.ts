import { booleanOption, cronExpressionSchema, describeProblems, integerInRange, MUST_BE_AN_OBJECT, resolveOptions, timeZoneSchema } from '@app/common';
import { z } from 'zod';
import { WebhookSecretConfigurationError } from './webhook-secret.errors';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The `webhooks` key of the RotationModule options. Every field is optional. */
export interface WebhookSecretsOptions {
  /** How long a replaced secret keeps verifying after a rotation (Svix: 24 h). @default 86400000 (24 h) */
  overlapMs?: number;
  /** Secrets that verify at once, the current one included; the oldest falls out first. 2..20. @default 5 */
  maxLiveSecrets?: number;
  /** Accepted distance of `webhook-timestamp` from now, either way. 1..3600. @default 300 */
  toleranceSeconds?: number;
  /**
   * Age after which the job rotates a webhook secret, until the rotation policies answer it
   * (`WebhookRotationDuePolicy`). 0: never. @default 15552000000 (180 d)
   */
  rotateAfterMs?: number;
  /**
   * How long the in-process set of live secrets of a connection is reused without re-checking the
   * credential's row version. 0: re-check on every verification (one metadata query). @default 0
   */
  cacheTtlMs?: number;
  /**
   * How long a secret staged by an operator (`stage`, for integrations without a WebhookSecretUpdater)
   * waits for its activation; after that the job (or the activation itself) discards it and the
   * current secret stays current. 1 minute..30 days. @default 604800000 (7 d)
   */
  stagedTtlMs?: number;
  /**
   * How long a step that waits for the credential's lock (a stage, the repair of a superseded push, the job's discard
   * of an ended one) waits for another step holding it before answering `WEBHOOK_ROTATION_IN_PROGRESS` (a step takes
   * well under a second). 1000..600000. @default 10000
   */
  stageLockWaitMs?: number;
  /** The `webhook-secret-rotation` job. */
  job?: {
    /** Register the job (needs ScheduleModule.forRoot() in the host). @default true */
    enabled?: boolean;
    /** Cron expression (5 or 6 fields). @default '0 30 3 * * *' (daily, 03:30) */
    cron?: string;
    /** IANA time zone of `cron`. @default 'UTC' */
    timeZone?: string;
    /** Credentials rotated per run at most (the next run continues). @default 1000 */
    maxPerRun?: number;
  };
}

export interface ResolvedWebhookSecretsOptions {
  overlapMs: number;
  maxLiveSecrets: number;
  toleranceSeconds: number;
  rotateAfterMs: number;
  cacheTtlMs: number;
  stagedTtlMs: number;
  stageLockWaitMs: number;
  job: { enabled: boolean; cron: string; timeZone: string; maxPerRun: number };
}

const int = (min: number, max: number) => integerInRange(min, max);

/** The zod schema of the `webhooks` key; the module owner nests it (`webhooks: webhookSecretsOptionsSchema`). */
export const webhookSecretsOptionsSchema = z
  .object({
    overlapMs: int(0, 30 * DAY).default(DAY),
    maxLiveSecrets: int(2, 20).default(5),
    toleranceSeconds: int(1, 3600).default(300),
    rotateAfterMs: int(0, 10 * 365 * DAY).default(180 * DAY),
    cacheTtlMs: int(0, HOUR).default(0),
    stagedTtlMs: int(60_000, 30 * DAY).default(7 * DAY),
    stageLockWaitMs: int(1000, 600_000).default(10_000),
    job: z
      .object({
        enabled: booleanOption().default(true),
        cron: cronExpressionSchema('must be a cron expression with 5 or 6 fields, e.g. "0 30 3 * * *"').default('0 30 3 * * *'),
        timeZone: timeZoneSchema().default('UTC'),
        maxPerRun: int(1, 1_000_000).default(1000),
      }, MUST_BE_AN_OBJECT)
      .strict()
      .prefault({}),
  }, MUST_BE_AN_OBJECT)
  .strict()
  .prefault({});

/** The defaults, resolved (what an absent `webhooks` key means). */
export const DEFAULT_WEBHOOK_SECRETS_OPTIONS: ResolvedWebhookSecretsOptions = webhookSecretsOptionsSchema.parse(undefined);

/** Validates the `webhooks` options alone (the module owner may instead nest the schema in its own). */
export function resolveWebhookSecretsOptions(options: WebhookSecretsOptions = {}): ResolvedWebhookSecretsOptions {
  return resolveOptions(
    webhookSecretsOptionsSchema,
    options,
    (problems) => new WebhookSecretConfigurationError(`Invalid RotationModule webhooks options:\n  - ${describeProblems(problems).join('\n  - ')}`),
  );
}
