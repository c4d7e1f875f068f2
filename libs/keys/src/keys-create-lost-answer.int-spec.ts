/**
 * Integration: a key create (and rotate, and restore) whose answer is lost to the client timeout, against the
 * local vault with the real SDK over HTTPS and the real audit. Key Vault's Create Key on an existing name adds a
 * version, so a blind retry would leave two; a restore's retry is refused as the key exists. The vault itself
 * counts the versions and the requests.
 */
import { randomBytes } from 'node:crypto';
import { Test, type TestingModule } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import type { OperationContext } from '@app/common';
import type { KeyClient } from '@azure/keyvault-keys';
import { KeyVaultErrorCode } from '@app/key-vault';
import { emulatorKeyClient, KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, type TestDatabase } from '@app/testing';
import { KeysModule, KeysService } from './index';
import { tenantKeyVaultName } from './naming/tenant-key-name';

// The client's timeout, which is also how long it reads back after one: 400 ms left a create landing 100 ms past
// the timeout unconfirmed in a CI run beside other work (its read-backs, each bounded by it, came too late).
const TIMEOUT_MS = 1000;
/** How long the vault holds the answer of a create or rotate it has made (counted from when it made it). */
const ANSWER_DELAY_MS = TIMEOUT_MS + 300;
/** Lets the vault send (and count) an answer the client stopped waiting for: the whole delay, and some. */
const settle = () => new Promise((r) => setTimeout(r, ANSWER_DELAY_MS + 300));

describe('KeysService create/rotate/restore when the vault answers after the client timeout', () => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let moduleRef: TestingModule;
  let keys: KeysService;
  /** The test's own look at the vault: the SDK's default timeouts, not the client timeout under test (a loaded machine exceeds it). */
  let vault: KeyClient;
  let audit: AuditService;
  const ctx: OperationContext = { tenantId: `lost-${randomBytes(3).toString('hex')}`, actor: { id: 'user:alice' } };
  const versionsOf = async (name: string) => {
    const versions: { version?: string }[] = [];
    for await (const p of vault.listPropertiesOfKeyVersions(tenantKeyVaultName(ctx.tenantId, name, 'cv'))) versions.push({ version: p.version });
    return versions;
  };
  const auditRows = async (action: string) => {
    await audit.flush();
    return (await audit.query({ tenantId: ctx.tenantId, limit: 100, order: 'asc' })).items.filter((r) => r.action === action);
  };

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    db = await createTestDatabase('sqlite');
    moduleRef = await Test.createTestingModule({
      imports: [
        ...credentialsStackImports({
          database: db.options,
          vault: emu,
          keyVault: { resilience: { maxAttempts: 3, timeoutMs: TIMEOUT_MS, initialDelayMs: 20, maxDelayMs: 50, pollIntervalMs: 50, breaker: { consecutiveFailures: 100 } } },
        }),
        KeysModule.forRoot({}),
      ],
    }).compile();
    await moduleRef.init();
    keys = moduleRef.get(KeysService);
    vault = emulatorKeyClient(emu);
    audit = moduleRef.get(AuditService);
    await keys.createKey(ctx, { name: 'warm', type: 'EC' }); // the client's challenge round trip happens here
  }, 60_000);

  afterEach(() => emu.clearFaults());
  afterAll(async () => {
    await moduleRef?.close();
    await emu?.stop();
    await db?.drop();
  });

  it('a create that took effect but whose answer came too late: one version, returned and audited as a success', async () => {
    emu.injectFault({ kind: 'latency', phase: 'response', latencyMs: ANSWER_DELAY_MS, operations: ['createKey'] });
    emu.resetStats();
    // EC: the vault makes it at once. An RSA key pair took the loaded test machine 0.8-1.5 s to generate, so it was made
    // only after the client's read-back had ended (then OUTCOME_UNKNOWN is the right answer, not this case's).
    const key = await keys.createKey(ctx, { name: 'slow-answer', type: 'EC' });
    await settle();

    const versions = await versionsOf('slow-answer');
    expect(versions.map((v) => v.version)).toEqual([key.version]);
    expect(emu.stats().byOperation.createKey).toBe(1);
    const rows = await auditRows('key.create');
    expect(rows.filter((r) => r.resource === 'key:slow-answer').map((r) => [r.result, r.details?.keyVersion])).toEqual([['success', key.version]]);
  });

  it('a create still running in the vault when the client gave up: one version, confirmed once it lands', async () => {
    // The vault acts on the request only after the client's timeout (as a slow RSA-4096 generation under load).
    emu.injectFault({ kind: 'latency', latencyMs: TIMEOUT_MS + 100, operations: ['createKey'] });
    emu.resetStats();
    const key = await keys.createKey(ctx, { name: 'slow-create', type: 'EC' });
    await settle();

    expect((await versionsOf('slow-create')).map((v) => v.version)).toEqual([key.version]);
    expect(emu.stats().byOperation.createKey).toBe(1);
    const rows = await auditRows('key.create');
    expect(rows.filter((r) => r.resource === 'key:slow-create').map((r) => r.result)).toEqual(['success']);
  });

  it('a create never confirmed: OUTCOME_UNKNOWN, audited as unknown (not as a failure), and never a second version', async () => {
    emu.injectFault({ kind: 'latency', latencyMs: 3 * TIMEOUT_MS, operations: ['createKey'] });
    emu.resetStats();
    const error = await keys.createKey(ctx, { name: 'no-answer', type: 'EC' }).then(
      () => undefined,
      (e: unknown) => e as { code?: unknown },
    );
    expect(error?.code).toBe(KeyVaultErrorCode.OUTCOME_UNKNOWN);
    await new Promise((r) => setTimeout(r, 3 * TIMEOUT_MS)); // the request lands in the vault meanwhile

    expect(await versionsOf('no-answer')).toHaveLength(1);
    expect(emu.stats().byOperation.createKey).toBe(1);
    const rows = await auditRows('key.create');
    expect(rows.filter((r) => r.resource === 'key:no-answer').map((r) => [r.result, r.errorCode])).toEqual([['unknown', '1018:OUTCOME_UNKNOWN']]);
  });

  it('a rotate whose answer came too late: one new version, the latest, audited as a success', async () => {
    const created = await keys.createKey(ctx, { name: 'rotated', type: 'EC' });
    emu.injectFault({ kind: 'latency', phase: 'response', latencyMs: ANSWER_DELAY_MS, operations: ['rotateKey'] });
    emu.resetStats();
    const rotated = await keys.rotateKey(ctx, 'rotated');
    await settle();

    const versions = (await versionsOf('rotated')).map((v) => v.version);
    expect(versions.sort()).toEqual([created.version, rotated.version].sort());
    expect(emu.stats().byOperation.rotateKey).toBe(1);
    expect((await keys.getKey(ctx, 'rotated')).version).toBe(rotated.version);
    const rows = await auditRows('key.rotate');
    expect(rows.map((r) => [r.result, r.details?.keyVersion])).toEqual([['success', rotated.version]]);
  });

  it('a restore that took effect but whose answer came too late: restored, the answer the key read back, audited as a success', async () => {
    await keys.createKey(ctx, { name: 'restored', type: 'EC' });
    const latest = await keys.rotateKey(ctx, 'restored');
    const backup = await keys.backupKey(ctx, 'restored');
    await keys.deleteKey(ctx, 'restored');
    await keys.purgeKey(ctx, 'restored');
    emu.injectFault({ kind: 'latency', phase: 'response', latencyMs: ANSWER_DELAY_MS, count: 1, operations: ['restoreKey'] });
    emu.resetStats();
    const restored = await keys.restoreKey(ctx, backup);
    await settle();

    expect([restored.name, restored.version]).toEqual(['restored', latest.version]);
    expect(await versionsOf('restored')).toHaveLength(2);
    // One restore took effect; every retry was refused as the key exists (one retry, or more when a loaded machine timed
    // out a retry too).
    const restores = Object.entries(emu.stats().byOperationAndStatus).filter(([k]) => k.startsWith('restoreKey:'));
    expect(restores.map(([k]) => k).sort()).toEqual(['restoreKey:200', 'restoreKey:409']);
    expect(Object.fromEntries(restores)['restoreKey:200']).toBe(1);
    const rows = await auditRows('key.restore');
    expect(rows.map((r) => [r.result, r.details?.keyVersion])).toEqual([['success', latest.version]]);
  });

  it('still retries a create the vault refused with 429 (it did not take effect)', async () => {
    emu.injectFault({ kind: 'status', status: 429, retryAfterSeconds: 0, count: 1, operations: ['createKey'] });
    emu.resetStats();
    const key = await keys.createKey(ctx, { name: 'throttled', type: 'EC' });
    await settle(); // on a loaded machine the retry's answer too may come after the timeout (the read-back confirms it)
    expect((await versionsOf('throttled')).map((v) => v.version)).toEqual([key.version]);
    expect(emu.stats().byOperationAndStatus).toMatchObject({ 'createKey:429': 1, 'createKey:200': 1 });
  });
});
