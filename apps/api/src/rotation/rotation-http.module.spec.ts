import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveNotificationOptions, resolveRotationOptions, resolveWebhookSecretsOptions } from '@app/rotation';
import { loadAppConfig } from '../config/app.config';
import { rotationModuleOptions } from './rotation-http.module';

describe('rotationModuleOptions (the host configuration → RotationModule)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cv-rotation-options-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('passes the jobs, the webhook options and the notification options; the SMTP CA file is read at start', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n';
    writeFileSync(join(dir, 'smtp-ca.pem'), pem);
    const config = loadAppConfig(
      {
        ROTATION_CHECK_ENABLED: 'false',
        WEBHOOK_SECRET_OVERLAP_MS: '600000',
        WEBHOOK_SECRET_ROTATION_ENABLED: 'false',
        SMTP_HOST: '127.0.0.1',
        SMTP_PORT: '2525',
        SMTP_FROM: 'vault@example.test',
        SMTP_CA_CERT_PATH: 'smtp-ca.pem',
      },
      dir,
    );
    const options = rotationModuleOptions(config);
    expect(resolveRotationOptions(options).rotationCheck.enabled).toBe(false);
    expect(resolveWebhookSecretsOptions(options.webhooks)).toMatchObject({ overlapMs: 600_000, job: { enabled: false } });
    expect(resolveNotificationOptions(options.notifications).email).toMatchObject({ enabled: true, host: '127.0.0.1', port: 2525, from: 'vault@example.test', caCertPem: pem });
  });

  it('fails at start when the SMTP CA file is missing', () => {
    const config = loadAppConfig({ SMTP_HOST: '127.0.0.1', SMTP_FROM: 'vault@example.test', SMTP_CA_CERT_PATH: 'nowhere.pem' }, dir);
    expect(() => rotationModuleOptions(config)).toThrow(/ENOENT/);
  });
});
