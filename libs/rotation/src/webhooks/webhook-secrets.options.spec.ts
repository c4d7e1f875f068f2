import type { FactoryProvider } from '@nestjs/common';
import { DEFAULT_WEBHOOK_SECRETS_OPTIONS, resolveWebhookSecretsOptions } from './webhook-secrets.options';
import { WebhookSecretConfigurationError, WebhookSecretErrorCode } from './webhook-secret.errors';
import { WEBHOOK_WIRING } from './webhook-secrets.providers';
import { WEBHOOK_SECRETS_OPTIONS } from './webhook-secrets.tokens';
import { ROTATION_RESOLVED_OPTIONS } from '../rotation.constants';
import { resolveRotationOptions } from '../rotation.options';

describe('webhooks options', () => {
  it('defaults: 24 h overlap, 5 live, ± 300 s, 180 d, no cache TTL, 7 d to activate a staged secret, 10 s for a held lock, a daily job in UTC', () => {
    expect(resolveWebhookSecretsOptions()).toEqual({
      overlapMs: 86_400_000,
      maxLiveSecrets: 5,
      toleranceSeconds: 300,
      rotateAfterMs: 180 * 86_400_000,
      cacheTtlMs: 0,
      stagedTtlMs: 7 * 86_400_000,
      stageLockWaitMs: 10_000,
      job: { enabled: true, cron: '0 30 3 * * *', timeZone: 'UTC', maxPerRun: 1000 },
    });
    expect(DEFAULT_WEBHOOK_SECRETS_OPTIONS).toEqual(resolveWebhookSecretsOptions({}));
    expect(resolveWebhookSecretsOptions({ job: { enabled: false } }).job).toMatchObject({ enabled: false, cron: '0 30 3 * * *' });
  });

  it('one typed error lists every bad field, without its value', () => {
    let err: unknown;
    try {
      resolveWebhookSecretsOptions({ maxLiveSecrets: 1, toleranceSeconds: 'whsec_secretlooking' as never, stageLockWaitMs: 999, job: { cron: 'every day', timeZone: 'Mars/Base' } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WebhookSecretConfigurationError);
    const { code, message } = err as WebhookSecretConfigurationError;
    expect(code).toBe(WebhookSecretErrorCode.WEBHOOK_CONFIGURATION);
    for (const field of ['maxLiveSecrets', 'toleranceSeconds', 'job.cron', 'job.timeZone']) expect(message).toContain(field);
    expect(message).toContain('stageLockWaitMs: must be an integer in 1000..600000');
    expect(message).not.toContain('whsec_secretlooking');
  });

  it('RotationModule wiring: the webhooks key of the module options, validated with them (resolveRotationOptions)', () => {
    const provider = WEBHOOK_WIRING.find((p) => (p as FactoryProvider).provide === WEBHOOK_SECRETS_OPTIONS) as FactoryProvider;
    expect(provider.inject).toEqual([ROTATION_RESOLVED_OPTIONS]);
    expect(provider.useFactory(resolveRotationOptions({ webhooks: { overlapMs: 1000 } }))).toMatchObject({ overlapMs: 1000, maxLiveSecrets: 5 });
    expect(provider.useFactory(resolveRotationOptions({}))).toEqual(DEFAULT_WEBHOOK_SECRETS_OPTIONS);
    expect(() => resolveRotationOptions({ webhooks: { maxLiveSecrets: 100 } })).toThrow(/webhooks\.maxLiveSecrets: must be an integer in 2\.\.20/);
  });
  it('refuses a misspelt key, at the top and in job, and names it', () => {
    let err: unknown;
    try {
      resolveWebhookSecretsOptions({ overlapMS: 1000, job: { cronTime: '0 30 3 * * *' } } as never);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WebhookSecretConfigurationError);
    const { message } = err as WebhookSecretConfigurationError;
    expect(message).toMatch(/\(options\): Unrecognized key: "overlapMS"/);
    expect(message).toMatch(/job: Unrecognized key: "cronTime"/);
  });

});
