import { CredentialType } from '@app/credentials';
import { RotationConfigurationError } from './errors/rotation.errors';
import { DEFAULT_ROTATION_POLICIES } from './policies/rotation-policy.types';
import { resolveRotationOptions } from './rotation.options';

describe('resolveRotationOptions', () => {
  it('applies the defaults: hourly expiry monitor, daily rotation check, thresholds 30/14/7/1, the policy table', () => {
    const o = resolveRotationOptions();
    expect(o.expiryMonitor).toMatchObject({ enabled: true, cronTime: '0 0 * * * *', jobName: 'rotation-expiry-monitor', thresholdsDays: [30, 14, 7, 1] });
    expect(o.rotationCheck).toMatchObject({ enabled: true, cronTime: '0 0 3 * * *', jobName: 'rotation-check', maxRotationsPerRun: 1000 });
    expect(o.defaults).toEqual(DEFAULT_ROTATION_POLICIES);
    expect(o.passwordPolicy).toEqual({ length: 32, symbols: true });
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
  it('refuses a misspelt key, at the root and in nested options, and names it; webhooks and notifications stay accepted', () => {
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
    // Validated by their own parts; not copied into the resolved rotation options.
    const o = resolveRotationOptions({ webhooks: { overlapMs: 1000 }, notifications: { enabled: false } });
    expect(o).not.toHaveProperty('webhooks');
    expect(o).not.toHaveProperty('notifications');
  });

});
