import { parseCli } from './main';

describe('emulator CLI flags', () => {
  it('defaults to port 8443 and ./data/vault with throttling on', () => {
    expect(parseCli([])).toMatchObject({ port: 8443, dataDir: './data/vault', throttle: { limit: 4000, windowMs: 10_000 }, auth: { mode: 'any' } });
  });

  it('maps every flag to an option', () => {
    expect(
      parseCli([
        '--host', '0.0.0.0', '--port', '9443', '--data-dir', '/tmp/v', '--tenant-id', 't', '--retention-days', '7',
        '--purge-protection', '--operation-delay-ms', '250', '--throttle-limit', '20', '--throttle-window-ms', '1000',
        '--auth', 'jwt', '--jwt-issuer', 'https://issuer', '--jwt-audience', 'aud', '--jwks-uri', 'https://issuer/keys', '--quiet',
      ]),
    ).toEqual({
      host: '0.0.0.0',
      port: 9443,
      dataDir: '/tmp/v',
      tenantId: 't',
      softDeleteRetentionDays: 7,
      purgeProtection: true,
      operationDelayMs: 250,
      throttle: { limit: 20, windowMs: 1000 },
      auth: { mode: 'jwt', issuer: 'https://issuer', audience: 'aud', jwksUri: 'https://issuer/keys' },
      quiet: true,
    });
    expect(parseCli(['--no-throttle', '--auth', 'static', '--token', 'abc'])).toMatchObject({ throttle: false, auth: { mode: 'static', token: 'abc' } });
    expect(parseCli(['--throttle-create-secret-limit', '5'])).toMatchObject({ throttle: { limit: 4000, windowMs: 10_000, createSecretLimit: 5 } });
    expect(parseCli(['--throttle-create-key-limit', '7'])).toMatchObject({ throttle: { limit: 4000, windowMs: 10_000, createKeyLimit: 7 } });
    expect(parseCli(['--lifetime-actions-check-ms', '0'])).toMatchObject({ lifetimeActionsCheckMs: 0 });
    expect(parseCli(['--help'])).toBe('help');
  });

  it('rejects unknown flags and bad values', () => {
    expect(() => parseCli(['--prot', '1'])).toThrow();
    expect(() => parseCli(['--port', 'abc'])).toThrow(/--port must be a number/);
    expect(() => parseCli(['--auth', 'none'])).toThrow(/--auth must be/);
  });
});
