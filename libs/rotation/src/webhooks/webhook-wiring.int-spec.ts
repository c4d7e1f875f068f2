/**
 * Integration: the webhook part inside the real RotationModule — options under `webhooks`, the job
 * registered on ScheduledJobs (bad options: webhook-secrets.options.spec.ts), "rotate after" from the rotation policies — and the live-set cache:
 * repeated verifications read no value, a revoke is refused at once (cached set included).
 */
import { ScheduleModule } from '@nestjs/schedule';
import { Test, type TestingModule } from '@nestjs/testing';
import { ManualClock, ScheduledJobs, type OperationContext } from '@app/common';
import { CredentialErrorCode, CredentialsService, CredentialStatus } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, DATABASE_KINDS, rejection, type TestDatabase } from '@app/testing';
import { Webhook } from 'standardwebhooks';
import { RotationPolicyService } from '../policies/rotation-policy.service';
import { RotationModule } from '../rotation.module';
import { WebhookSecretRotationJob } from './webhook-secret-rotation.job';
import { WebhookSecretUpdaterRegistry } from './webhook-secret-updater';
import { WebhookSecretsService } from './webhook-secrets.service';
import { RecordingUpdater } from './testing/webhook-stack';

const DAY = 86_400_000;
const body = '{"type":"ping"}';

function build(db: TestDatabase, emu: KeyVaultEmulator, clock: ManualClock, webhooks: Record<string, unknown>): Promise<TestingModule> {
  return Test.createTestingModule({
    imports: [
      ...credentialsStackImports({ database: db.options, vault: emu, credentials: { clock, isGlobal: true }, persistence: { outbox: { dispatch: false } } }),
      ScheduleModule.forRoot(),
      RotationModule.forRoot({ clock, webhooks, expiryMonitor: { enabled: false }, rotationCheck: { enabled: false } }),
    ],
  }).compile();
}

describe.each(DATABASE_KINDS)('webhook secrets in RotationModule on %s', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let app: TestingModule;
  const clock = new ManualClock(new Date());
  const updater = new RecordingUpdater();
  const ctx: OperationContext = { tenantId: 'tenant-w', actor: { id: 'user:ops' } };
  const sign = (secret: string) => {
    const at = new Date(Math.floor(clock.now().getTime() / 1000) * 1000);
    return { 'webhook-id': 'msg_w', 'webhook-timestamp': String(at.getTime() / 1000), 'webhook-signature': new Webhook(secret).sign('msg_w', at, body) };
  };

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase(kind);
    app = await build(db, emu, clock, { overlapMs: 3_600_000, job: { cron: '0 0 4 * * *' } });
    await app.init();
    app.get(WebhookSecretUpdaterRegistry).register('stripe', updater);
  });

  afterAll(async () => {
    await app?.close();
    await emu?.stop();
    await db?.drop();
  });

  it('registers the webhook-secret-rotation job from the webhooks options', () => {
    const status = app.get(ScheduledJobs).status().find((j) => j.name === 'webhook-secret-rotation');
    expect(status).toMatchObject({ cron: '0 0 4 * * *', lockKey: 'rotation-webhook-secrets' });
  });

  it('the job follows the effective policy: a 1-day credential override falls due, a manual one never does, the default (180 d) not yet', async () => {
    const service = app.get(WebhookSecretsService);
    const policies = app.get(RotationPolicyService);
    const short = await service.create(ctx, { integrationId: 'stripe', connectionId: 'short' });
    const manual = await service.create(ctx, { integrationId: 'stripe', connectionId: 'manual' });
    const normal = await service.create(ctx, { integrationId: 'stripe', connectionId: 'normal' });
    await policies.set(ctx, { level: 'credential', target: short.credential.id, rotateAfterDays: 1 });
    await policies.set(ctx, { level: 'credential', target: manual.credential.id, rotateAfterDays: 1, rotation: 'manual' });
    clock.advance(2 * DAY);
    expect(await app.get(WebhookSecretRotationJob).runOnce()).toMatchObject({ acquired: true, rotated: 1, failed: 0 });
    const credentials = app.get(CredentialsService);
    expect((await credentials.getMetadata(ctx, short.credential.id)).version).toBe(2);
    expect((await credentials.getMetadata(ctx, manual.credential.id)).version).toBe(1);
    expect((await credentials.getMetadata(ctx, normal.credential.id)).version).toBe(1);
  });

  it('repeated verifications read no value; a revoke is refused at once, cached set or not', async () => {
    const service = app.get(WebhookSecretsService);
    const credentials = app.get(CredentialsService);
    const target = { tenantId: ctx.tenantId, integrationId: 'stripe', connectionId: 'cached', context: ctx };
    const { credential, secret } = await service.create(ctx, target);
    await service.verifyWebhook(target, body, sign(secret));
    const get = jest.spyOn(credentials, 'get');
    const getVersion = jest.spyOn(credentials, 'getVersion');
    for (let i = 0; i < 5; i++) await service.verifyWebhook(target, body, sign(secret));
    expect(get.mock.calls.length + getVersion.mock.calls.length).toBe(0);
    get.mockRestore();
    getVersion.mockRestore();

    await credentials.updateMetadata(ctx, credential.id, { status: CredentialStatus.REVOKED });
    expect(((await rejection(service.verifyWebhook(target, body, sign(secret)))) as { code?: number }).code).toBe(CredentialErrorCode.REVOKED);
    expect(((await rejection(service.signWebhook(target, 'm', new Date(), body))) as { code?: number }).code).toBe(CredentialErrorCode.REVOKED);
    // A rotation never makes a revoked secret active again, neither by hand nor by the job.
    expect(((await rejection(service.rotate(ctx, credential.id))) as { code?: number }).code).toBe(CredentialErrorCode.REVOKED);
    clock.advance(200 * DAY);
    const run = await app.get(WebhookSecretRotationJob).runOnce();
    expect(run).toMatchObject({ acquired: true, revoked: 1 });
    expect((await credentials.getMetadata(ctx, credential.id)).status).toBe(CredentialStatus.REVOKED);
  });
});
