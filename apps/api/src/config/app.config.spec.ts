import { ConfigValidationError, loadAppConfig } from './app.config';

describe('loadAppConfig', () => {
  it('defaults to the embedded vault and a SQLite file under ./data', () => {
    const cfg = loadAppConfig({}, '/srv/app');
    expect(cfg.database).toEqual({ type: 'sqlite', path: '/srv/app/data/credential-vault.sqlite' });
    expect(cfg.keyVault).toMatchObject({ mode: 'embedded', emulatorDataDir: '/srv/app/data/vault', emulatorPort: 8443 });
    expect(cfg.http).toMatchObject({ host: '127.0.0.1', port: 3000 });
    expect(cfg.metrics.enabled).toBe(true);
  });

  it('uses PostgreSQL and an external vault when configured', () => {
    const cfg = loadAppConfig({
      DATABASE_TYPE: 'postgres',
      DATABASE_URL: 'postgres://u@db:5432/cv',
      KEY_VAULT_URL: 'https://myvault.vault.azure.net',
      KEY_VAULT_CREDENTIAL: 'managed-identity',
      AZURE_CLIENT_ID: 'cid',
      METRICS_ENABLED: 'false',
    });
    expect(cfg.database).toMatchObject({ type: 'postgres', url: 'postgres://u@db:5432/cv', poolSize: 10 });
    expect(cfg.keyVault).toMatchObject({ mode: 'external', url: 'https://myvault.vault.azure.net', credential: 'managed-identity', clientId: 'cid' });
    expect(cfg.metrics.enabled).toBe(false);
  });

  it('lists every problem at once, naming the variable and what to fix', () => {
    let err: ConfigValidationError | undefined;
    try {
      loadAppConfig({ PORT: 'eighty', DATABASE_TYPE: 'postgres', LOG_LEVEL: 'loud' });
    } catch (e) {
      err = e as ConfigValidationError;
    }
    expect(err).toBeInstanceOf(ConfigValidationError);
    expect(err!.problems.join('\n')).toMatch(/PORT/);
    expect(err!.problems.join('\n')).toMatch(/DATABASE_URL: is required when DATABASE_TYPE=postgres/);
    expect(err!.problems.join('\n')).toMatch(/LOG_LEVEL/);
    expect(err!.message).toMatch(/README/);
  });

  it('requires the service principal variables for client-secret auth, without echoing the secret', () => {
    const secret = 'super-secret-value-123';
    try {
      loadAppConfig({ KEY_VAULT_URL: 'https://v.vault.azure.net', KEY_VAULT_CREDENTIAL: 'client-secret', AZURE_CLIENT_SECRET: secret });
      throw new Error('expected a validation error');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigValidationError);
      const msg = (e as Error).message;
      expect(msg).toMatch(/AZURE_TENANT_ID: is required when KEY_VAULT_CREDENTIAL=client-secret/);
      expect(msg).toMatch(/AZURE_CLIENT_ID/);
      expect(msg).not.toContain(secret);
    }
  });

  it('refuses the embedded development vault in production', () => {
    expect(() => loadAppConfig({ NODE_ENV: 'production' })).toThrow(/KEY_VAULT_URL: is required in production/);
  });

  it('anchors the audit chains every 5 minutes by default; AUDIT_ANCHOR_* override it', () => {
    expect(loadAppConfig({}).audit.anchor).toEqual({ enabled: true, cron: '*/5 * * * *' });
    expect(loadAppConfig({ AUDIT_ANCHOR_ENABLED: 'false', AUDIT_ANCHOR_CRON: '0 * * * *' }).audit.anchor).toEqual({
      enabled: false,
      cron: '0 * * * *',
    });
    expect(() => loadAppConfig({ AUDIT_ANCHOR_ENABLED: 'sometimes', AUDIT_ANCHOR_CRON: '* *' })).toThrow(
      /AUDIT_ANCHOR_ENABLED[\s\S]*AUDIT_ANCHOR_CRON/,
    );
  });

  it('treats empty variables as unset', () => {
    expect(loadAppConfig({ KEY_VAULT_URL: '', PORT: '' }).keyVault.mode).toBe('embedded');
  });
});
