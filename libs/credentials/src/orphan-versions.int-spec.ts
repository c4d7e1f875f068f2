/**
 * Integration: a real crash between the vault write and the commit (a child process rotating a credential through the
 * real stack, killed with SIGKILL once its new Key Vault version exists), on SQLite and PostgreSQL with the real SDK
 * against the local vault. The orphan version it leaves holds a credential value no metadata references: revoke must
 * leave no version of the credential enabled.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Test, type TestingModule } from '@nestjs/testing';
import { ManualClock, type OperationContext } from '@app/common';
import { KeyVaultProvider, type SecretProperties } from '@app/key-vault';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, DATABASE_KINDS, killHard, startCrashChild, writeRequireHook, type TestDatabase } from '@app/testing';
import { CredentialsService, CredentialType, credentialSecretName } from './index';

const CHILD = join(__dirname, 'testing', 'value-write-crash.child.ts');
/** The child loads only the stack helper of the test support (the rest starts the OAuth test server). */
const STACK_ONLY = { '@app/testing': ['test/support/stack.ts'] };

jest.setTimeout(120_000);

describe.each(DATABASE_KINDS)('a write killed between the vault write and the commit on %s', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let dir: string;
  let hook: string;
  let moduleRef: TestingModule;
  let service: CredentialsService;
  let vault: KeyVaultProvider;
  const clock = new ManualClock(new Date());
  const run = randomBytes(3).toString('hex');
  const ctx: OperationContext = { tenantId: `orphans_${run}`, actor: { id: 'user:ops' } };
  const secret = () => `tok_${randomBytes(18).toString('base64url')}`;

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    db = await createTestDatabase(kind);
    dir = mkdtempSync(join(tmpdir(), 'cv-orphan-'));
    hook = writeRequireHook(dir, STACK_ONLY);
    moduleRef = await Test.createTestingModule({
      imports: credentialsStackImports({
        database: db.options,
        vault: emu,
        keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20, breaker: { consecutiveFailures: 1000 } } },
        credentials: { clock },
      }),
    }).compile();
    await moduleRef.init();
    service = moduleRef.get(CredentialsService);
    vault = moduleRef.get(KeyVaultProvider);
  });

  afterAll(async () => {
    await moduleRef?.close();
    await emu?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Stores a vault credential, then has a child rotate it and die (SIGKILL) after its vault write, before its commit. */
  async function crashedRotation(connectionId: string): Promise<{ id: string; secretName: string; current: string; orphan: string; value: string }> {
    const value = secret();
    const meta = await service.store(ctx, { integrationId: 'github', connectionId, type: CredentialType.API_KEY, value });
    const { child, line } = startCrashChild(hook, CHILD, 'WRITTEN', {
      env: {
        CV_TEST_DS: JSON.stringify(db.options),
        CV_VAULT_URL: emu.vaultUrl,
        CV_VAULT_CA: emu.caCertPem,
        CV_TENANT: ctx.tenantId,
        CV_CREDENTIAL: meta.id,
        CV_VALUE: secret(),
      },
    });
    const orphan = await line;
    expect(await killHard(child)).toBe('SIGKILL');
    const secretName = credentialSecretName({ tenantId: ctx.tenantId, integrationId: 'github', connectionId, type: CredentialType.API_KEY }, 0);
    const versions = await allVersions(secretName);
    const current = versions.find((v) => v.version !== orphan)!.version;
    // The crash left an orphan: an enabled version holding a value no metadata references, and the previous value current.
    expect(versions.map((v) => [v.version, v.enabled]).sort()).toEqual([[current, true], [orphan, true]].sort());
    const read = await service.get(ctx, meta.id);
    expect([read.value, read.metadata.version]).toEqual([value, 1]);
    return { id: meta.id, secretName, current, orphan, value };
  }

  async function allVersions(name: string): Promise<SecretProperties[]> {
    const out: SecretProperties[] = [];
    for await (const v of vault.listAllSecretVersions(name)) out.push(v);
    return out;
  }

  it('revoke disables every version of the credential, the orphan of the crashed write included', async () => {
    const { id, secretName, current, orphan, value } = await crashedRotation('revoke');
    expect((await service.revoke(ctx, id)).vaultVersions).toBe(2);
    expect((await allVersions(secretName)).filter((v) => v.enabled)).toEqual([]);
    // Un-revoke brings back the value the revoke withdrew, never the orphan (no metadata would serve it).
    await service.unrevoke(ctx, id);
    expect((await allVersions(secretName)).map((v) => [v.version, v.enabled]).sort()).toEqual([[current, true], [orphan, false]].sort());
    expect((await service.get(ctx, id)).value).toBe(value);
  });
});
