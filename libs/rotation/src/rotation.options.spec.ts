import { CredentialType } from '@app/credentials';
import { RotationConfigurationError } from './errors/rotation.errors';
import { DEFAULT_ROTATION_POLICIES } from './policies/rotation-policy.types';
import { resolveNotificationOptions } from './notifications/notification.options';
import { resolveRotationOptions } from './rotation.options';
import { DEFAULT_WEBHOOK_SECRETS_OPTIONS, resolveWebhookSecretsOptions } from './webhooks/webhook-secrets.options';

describe('resolveRotationOptions', () => {
  it('applies the defaults: hourly expiry monitor, daily rotation check, thresholds 30/14/7/1, the policy table', () => {
    const o = resolveRotationOptions();
    expect(o.expiryMonitor).toMatchObject({ enabled: true, cronTime: '0 0 * * * *', jobName: 'rotation-expiry-monitor', thresholdsDays: [30, 14, 7, 1] });
    expect(o.rotationCheck).toMatchObject({ enabled: true, cronTime: '0 0 3 * * *', jobName: 'rotation-check', maxRotationsPerRun: 1000 });
    expect(o.defaults).toEqual(DEFAULT_ROTATION_POLICIES);
    expect(o.passwordPolicy).toEqual({ length: 32, symbols: true });
  });

  it("says what an option of the wrong kind wants, in the house's words, not zod's (notifications and webhooks included)", () => {
    const bad = {
      defaults: [],
      handlers: { acme: {} },
      expiryMonitor: { thresholdsDays: 7 },
      rotationCheck: 'daily',
      passwordPolicy: [],
      webhooks: { job: 3 },
      notifications: { retry: { maxAttempts: 0 }, bus: 1, webhook: { enabled: 'y', userAgent: '' }, email: { port: 'x', subjectPrefix: 'x'.repeat(65) }, sendWaitMs: -1 },
    };
    let message = 'no error';
    try {
      resolveRotationOptions(bad as never);
    } catch (e) {
      message = (e as Error).message;
    }
    for (const problem of [
      'defaults: must be an object of credential type → policy',
      'handlers: must be a list of handler registrations',
      'expiryMonitor.thresholdsDays: must list at least one threshold',
      'rotationCheck: must be an object',
      'passwordPolicy: must be an object',
      'webhooks.job: must be an object',
      'notifications.retry.maxAttempts: must be an integer in 1..20',
      'notifications.bus: must be an object',
      'notifications.webhook.enabled: must be a boolean',
      'notifications.webhook.userAgent: must be a string of 1..200 characters',
      'notifications.email.port: must be an integer in 1..65535',
      'notifications.email.subjectPrefix: must be a string of at most 64 characters',
      'notifications.sendWaitMs: must be an integer of milliseconds in 0..120000',
    ]) {
      expect(message).toContain(problem);
    }
    expect(message).not.toMatch(/Invalid input|Too (small|big)|expected (object|boolean|number|array|record)/);
    // A misspelt key in a nested option is still named.
    expect(() => resolveRotationOptions({ notifications: { webhook: { timeout: 5 } } } as never)).toThrow(/notifications\.webhook: Unrecognized key: "timeout"/);
  });

  it('merges a type default field by field and sorts thresholds', () => {
    const o = resolveRotationOptions({ defaults: { [CredentialType.API_KEY]: { rotateAfterDays: 30 } }, expiryMonitor: { thresholdsDays: [1, 60, 7, 7] } });
    expect(o.defaults[CredentialType.API_KEY]).toEqual({ rotateAfterDays: 30, warnBeforeDays: 14, rotation: 'manual' });
    expect(o.expiryMonitor.thresholdsDays).toEqual([60, 7, 1]);
  });

  it('reports every problem in one error that names the fields, never the values', () => {
    let error: unknown;
    try {
      resolveRotationOptions({
        expiryMonitor: { cronTime: 'every hour', batchSize: 0 },
        rotationCheck: { enabled: 'yes' as never },
        defaults: { [CredentialType.API_KEY]: { rotateAfterDays: -5 } },
        handlers: [{ handler: { mint: async () => ({ value: 'x' }) } }],
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RotationConfigurationError);
    const message = (error as Error).message;
    for (const field of ['expiryMonitor.cronTime', 'expiryMonitor.batchSize', 'rotationCheck.enabled', 'defaults.api_key.rotateAfterDays', 'handlers.0']) expect(message).toContain(field);
    expect(message).not.toContain('every hour');
    expect((error as RotationConfigurationError).code).toBe(3001);
  });
  it('refuses a misspelt key, at the root and in nested options, and names it', () => {
    let error: unknown;
    try {
      resolveRotationOptions({
        expiryMonitr: { enabled: false },
        expiryMonitor: { thresholds: [7] },
        rotationCheck: { cron: '0 0 3 * * *' },
        passwordPolicy: { lenght: 40 },
      } as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RotationConfigurationError);
    const message = (error as Error).message;
    expect(message).toMatch(/\(options\): Unrecognized key: "expiryMonitr"/);
    expect(message).toMatch(/expiryMonitor: Unrecognized key: "thresholds"/);
    expect(message).toMatch(/rotationCheck: Unrecognized key: "cron"/);
    expect(message).toMatch(/passwordPolicy: Unrecognized key: "lenght"/);
  });

  it('validates webhooks and notifications in the same pass: mistakes in every part, one error naming each by its path', () => {
    let error: unknown;
    try {
      resolveRotationOptions({
        rotationCheck: { batchSize: 0 },
        webhooks: { maxLiveSecrets: 1, overlapMS: 1000, job: { cron: 'every day' } } as never,
        notifications: { retry: { maxAttempts: 0, leaseMs: 5000 }, email: { enabled: true, auth: { user: 'u', pass: 'hunter2-smtp-pass' } } },
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RotationConfigurationError);
    const message = (error as Error).message;
    for (const problem of [
      'rotationCheck.batchSize: must be an integer in 1..1000',
      'webhooks.maxLiveSecrets: must be an integer in 2..20',
      'webhooks: Unrecognized key: "overlapMS"',
      'webhooks.job.cron: must be a cron expression',
      'notifications.retry.maxAttempts: ',
      'notifications.retry.leaseMs: must exceed webhook.timeoutMs',
      'notifications.email.host: is required when e-mail is enabled',
      'notifications.email.from: is required when e-mail is enabled',
    ]) {
      expect(message).toContain(problem);
    }
    expect(message).not.toContain('hunter2');
    expect(message).not.toContain('every day');
  });

  it("checks the notifications' sendWaitMs against the host's outbox handlerTimeoutMs in the same pass", () => {
    let error: unknown;
    try {
      resolveRotationOptions({ rotationCheck: { batchSize: 0 }, notifications: { sendWaitMs: 30_000 } }, { outboxHandlerTimeoutMs: 10_000 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RotationConfigurationError);
    expect((error as Error).message).toContain('rotationCheck.batchSize: must be an integer in 1..1000');
    expect((error as Error).message).toMatch(/notifications\.sendWaitMs: must be at least 1000 ms less than the outbox's handlerTimeoutMs/);
    expect(resolveRotationOptions({ notifications: { sendWaitMs: 9000 } }, { outboxHandlerTimeoutMs: 10_000 }).notifications.sendWaitMs).toBe(9000);
    expect(resolveRotationOptions({ notifications: { sendWaitMs: 30_000 } }).notifications.sendWaitMs).toBe(30_000); // no host outbox known
  });

  it('resolves valid webhooks and notifications options as their own parts do (defaults included)', () => {
    const webhooks = { overlapMs: 1000, job: { enabled: false } };
    const notifications = { enabled: false, retry: { maxAttempts: 2 }, email: { enabled: true, host: 'smtp.example.test', from: 'vault@example.test' } };
    const o = resolveRotationOptions({ webhooks, notifications });
    expect(o.webhooks).toEqual(resolveWebhookSecretsOptions(webhooks));
    expect(o.notifications).toEqual(resolveNotificationOptions(notifications));
    expect(resolveRotationOptions().webhooks).toEqual(DEFAULT_WEBHOOK_SECRETS_OPTIONS);
    expect(resolveRotationOptions().notifications).toEqual(resolveNotificationOptions());
  });

});
