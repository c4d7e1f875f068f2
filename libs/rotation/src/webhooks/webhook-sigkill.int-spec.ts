/**
 * Integration: a real process death between the push and the promotion. A child process (its own
 * Nest app on the same database and local vault) rotates a webhook secret; its updater reports the
 * push and hangs; the parent kills it with SIGKILL. A fresh app on the same database still serves
 * the previous secret, accepts the pushed one, and its job completes the rotation with that value.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock, type OperationContext } from '@app/common';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, DATABASE_KINDS, killHard, startCrashChild, type TestDatabase, writeRequireHook } from '@app/testing';
import { Webhook } from 'standardwebhooks';
import { WebhookSecretState } from './persistence/webhook-secret-version.entity';
import { RecordingUpdater, startWebhookStack, type WebhookStack } from './testing/webhook-stack';

const CHILD = join(__dirname, 'testing', 'webhook-crash.child.ts');
/** The child loads only the stack helper of the test support (the rest starts the OAuth test server). */
const STACK_ONLY = { '@app/testing': ['test/support/stack.ts'] };
function startChild(hook: string, env: Record<string, string>): { child: ChildProcess; pushed: Promise<string> } {
  const { child, line } = startCrashChild(hook, CHILD, 'PUSHED', { env });
  return { child, pushed: line };
}

describe.each(DATABASE_KINDS)('webhook rotation killed between push and promotion on %s', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let dir: string;
  let stack: WebhookStack | undefined;
  const clock = new ManualClock(new Date());
  const ctx: OperationContext = { tenantId: 'tenant-kill', actor: { id: 'user:ops' } };

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase(kind);
    dir = mkdtempSync(join(tmpdir(), 'cv-webhook-kill-'));
  });

  afterAll(async () => {
    await stack?.moduleRef.close();
    await emu?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the previous secret stays current, the pushed one verifies, and the next run completes with it', async () => {
    const setup = await startWebhookStack(db, emu, clock);
    const { credential, secret: oldSecret } = await setup.service.create(ctx, { integrationId: 'stripe', connectionId: 'acct-kill' });
    await setup.moduleRef.close();

    const { child, pushed } = startChild(writeRequireHook(dir, STACK_ONLY), {
      CV_TEST_DS: JSON.stringify(db.options),
      CV_VAULT_URL: emu.vaultUrl,
      CV_VAULT_CA: emu.caCertPem,
      CV_TENANT: ctx.tenantId,
      CV_CREDENTIAL: credential.id,
    });
    const rotationId = await pushed;
    expect(await killHard(child)).toBe('SIGKILL');

    stack = await startWebhookStack(db, emu, clock);
    const updater = new RecordingUpdater();
    stack.updaters.register('stripe', updater);
    const current = await stack.credentials.get(ctx, credential.id);
    expect([current.value, current.metadata.version]).toEqual([oldSecret, 1]);
    const pending = (await stack.versionRows(credential.id)).find((r) => r.state === WebhookSecretState.PENDING);
    expect(pending?.id).toBe(rotationId);
    expect(pending?.pushStartedAt).not.toBeNull();
    const pushedSecret = (await stack.credentials.get(ctx, pending?.stagingCredentialId as string)).value;
    const target = { tenantId: ctx.tenantId, integrationId: 'stripe', connectionId: 'acct-kill' };
    const at = new Date(Math.floor(clock.now().getTime() / 1000) * 1000);
    const headers = { 'webhook-id': 'msg_k', 'webhook-timestamp': String(at.getTime() / 1000), 'webhook-signature': new Webhook(pushedSecret).sign('msg_k', at, '{}') };
    expect((await stack.service.verifyWebhook(target, '{}', headers)).version).toBeNull();

    expect(await stack.job.runOnce()).toMatchObject({ acquired: true, resumed: 1, failed: 0 });
    expect(updater.calls.map((c) => [c.newSecret, c.rotationId])).toEqual([[pushedSecret, rotationId]]);
    const after = await stack.credentials.get(ctx, credential.id);
    expect([after.value, after.metadata.version]).toEqual([pushedSecret, 2]);
  });
});
