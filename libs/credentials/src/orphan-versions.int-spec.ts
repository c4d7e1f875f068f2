/**
 * Integration: a real crash between the vault write and the commit (a child process rotating a credential through the
 * real stack, killed with SIGKILL once its new Key Vault version exists), on SQLite and PostgreSQL with the real SDK
 * against the local vault. The orphan version it leaves holds a credential value no metadata references: revoke must
 * leave no version of the credential enabled, and the orphan-versions job disables it once it is past its grace period
 * (never before: a live write may still commit such a version), leaving the previous value current and readable.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Test, type TestingModule } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import { ManualClock, type OperationContext } from '@app/common';
import { KeyVaultProvider, type SecretProperties } from '@app/key-vault';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, DATABASE_KINDS, killHard, startCrashChild, writeRequireHook, type TestDatabase } from '@app/testing';
import {
  CredentialCache,
  CredentialOrphanVersions,
  CredentialsService,
  CredentialType,
  CredentialWriteTooSlowError,
  credentialSecretName,
  MIN_ORPHAN_GRACE_MS,
  ORPHAN_VERSIONS_AUDIT_ACTION,
  VALUE_COMMIT_DEADLINE_MS,
} from './index';

const GRACE_MS = MIN_ORPHAN_GRACE_MS;
const MAX_SECRETS_PER_RUN = 2;

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
        credentials: { clock, orphanVersions: { graceMs: GRACE_MS, maxSecretsPerRun: MAX_SECRETS_PER_RUN } },
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
  async function crashedRotation(connectionId: string): Promise<{ id: string; secretName: string; current: string; orphan: string; value: string; orphanValue: string }> {
    const value = secret();
    const orphanValue = secret();
    const meta = await service.store(ctx, { integrationId: 'github', connectionId, type: CredentialType.API_KEY, value });
    const { child, line } = startCrashChild(hook, CHILD, 'WRITTEN', {
      env: {
        CV_TEST_DS: JSON.stringify(db.options),
        CV_VAULT_URL: emu.vaultUrl,
        CV_VAULT_CA: emu.caCertPem,
        CV_TENANT: ctx.tenantId,
        CV_CREDENTIAL: meta.id,
        CV_VALUE: orphanValue,
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
    return { id: meta.id, secretName, current, orphan, value, orphanValue };
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

  it('the orphan-versions job disables the orphan once past its grace period, and only it; the previous value stays current', async () => {
    const { id, secretName, current, orphan, value, orphanValue } = await crashedRotation('sweep');
    const job = moduleRef.get(CredentialOrphanVersions);
    /** Runs until a pass over the vault's secrets is complete (each run bounded); the versions it disabled. */
    const fullPass = async () => {
      let disabled = 0;
      for (let run = 0; run < 50; run++) {
        const r = await job.runOnce();
        expect(r).toMatchObject({ acquired: true, failed: 0 });
        expect(r.secrets).toBeLessThanOrEqual(MAX_SECRETS_PER_RUN);
        disabled += r.disabled;
        if (r.passComplete) return disabled;
      }
      throw new Error('no complete pass in 50 runs');
    };
    // Younger than the grace period: a write on another replica could still commit it. Untouched.
    await fullPass();
    expect((await allVersions(secretName)).map((v) => [v.version, v.enabled]).sort()).toEqual([[current, true], [orphan, true]].sort());

    clock.advance(GRACE_MS + 60_000);
    expect(await fullPass()).toBeGreaterThanOrEqual(1);
    expect((await allVersions(secretName)).map((v) => [v.version, v.enabled]).sort()).toEqual([[current, true], [orphan, false]].sort());
    moduleRef.get(CredentialCache).clear();
    const read = await service.get(ctx, id);
    expect([read.value, read.metadata.version]).toEqual([value, 1]);
    // Audited per credential, with the version ids and never the value.
    const audit = moduleRef.get(AuditService);
    await audit.flush();
    const rows = (await audit.query({ tenantId: ctx.tenantId, resource: id, action: ORPHAN_VERSIONS_AUDIT_ACTION })).items;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actorId: 'system:orphan-versions', result: 'success', details: { disabled: 1, vaultVersions: [orphan], intendedVersions: [2] } });
    expect(JSON.stringify(rows)).not.toContain(orphanValue);
    // A second pass finds nothing more: referenced versions are never touched.
    expect(await fullPass()).toBe(0);
  });

  it('a write that reaches its commit past the deadline commits nothing and disables its own version (the job could have judged it an orphan)', async () => {
    const value = secret();
    const meta = await service.store(ctx, { integrationId: 'github', connectionId: 'slow', type: CredentialType.API_KEY, value });
    const now = performance.now.bind(performance);
    const slow = jest.fn(async () => {
      // The transaction's own rows are written; the commit is about to come, a deadline too late.
      jest.spyOn(performance, 'now').mockImplementation(() => now() + VALUE_COMMIT_DEADLINE_MS + 1);
    });
    try {
      await expect(service.rotate(ctx, meta.id, secret(), { inCommit: slow })).rejects.toBeInstanceOf(CredentialWriteTooSlowError);
    } finally {
      jest.restoreAllMocks();
    }
    expect(slow).toHaveBeenCalledTimes(1);
    const read = await service.get(ctx, meta.id);
    expect([read.value, read.metadata.version]).toEqual([value, 1]);
    const name = credentialSecretName({ tenantId: ctx.tenantId, integrationId: 'github', connectionId: 'slow', type: CredentialType.API_KEY }, 0);
    expect((await allVersions(name)).map((v) => v.enabled).sort()).toEqual([false, true]);
  });
});
