import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { databaseOptions, loadAppConfig } from '@app/api-host';
import { CredentialsService, CredentialType, ValueStoreKind } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { WebhookSecretsService } from '@app/rotation';
import { externalVaultEnv } from './support/cli';
import { spawnCli } from './support/cli-process';
import { DATABASE_KINDS } from './support/database';
import { ROTATION_JOBS_OFF, startTestHost, type TestHost } from './support/host';
import { writeRequireHook } from './support/swc-require-hook';

/**
 * Credential ids (and a staged secret's rotation id) are UUIDs, compared case-insensitively (RFC 9562): an operator
 * pastes one from a ticket in upper case. The CLI process answered NOT_FOUND (exit 1) and the leaked credential stayed
 * active. Each command acts on the credential the id names, whatever its case.
 */
describe.each(DATABASE_KINDS)('the CLI process given a credential id in upper case (%s)', (kind) => {
  let dir: string;
  let hook: string;
  let vault: KeyVaultEmulator;
  let host: TestHost;
  let rows: DataSource;
  const tenantId = 'cli-upper-case';
  const ctx = { tenantId, actor: { id: 'ops' } };
  let keyId: string;
  let webhookId: string;
  const children: ChildProcess[] = [];

  const cli = async (args: string[]) => {
    const run = spawnCli(hook, args, { ...host.env, LOG_LEVEL: 'error' });
    children.push(run.child);
    const r = await run.exited;
    return { ...r, result: r.code === 0 ? (JSON.parse(r.stdout) as Record<string, any>) : undefined };
  };
  const statusOf = async (id: string) => ((await rows.query(`SELECT status FROM cv_credentials WHERE id = ${kind === 'postgres' ? '$1' : '?'}`, [id])) as { status: string }[])[0]?.status;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cv-cli-upper-'));
    hook = writeRequireHook(dir);
    vault = await KeyVaultEmulator.start({ dataDir: join(dir, 'vault'), port: 0, quiet: true });
    host = await startTestHost(kind, { ...externalVaultEnv(vault), ...ROTATION_JOBS_OFF });
    const credentials = host.app.get(CredentialsService);
    keyId = (await credentials.store(ctx, { integrationId: 'github', connectionId: 'main', type: CredentialType.API_KEY, value: `sk_${'a'.repeat(30)}`, valueStore: ValueStoreKind.VAULT })).id;
    webhookId = (await host.app.get(WebhookSecretsService).create(ctx, { integrationId: 'stripe', connectionId: 'main' })).credential.id;
    await host.app.close(); // the database and the vault stay; the CLI runs against them
    rows = await new DataSource(databaseOptions(loadAppConfig(host.env))).initialize();
  }, 60_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await rows?.destroy();
    await host?.db.drop();
    rmSync(host?.dataDir ?? '', { recursive: true, force: true });
    await vault?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('rotate and revoke act on the credential: the revoke happens, exit 0, the id printed as stored', async () => {
    expect(keyId).toBe(keyId.toLowerCase());
    const rotated = await cli(['rotate', '--tenant', tenantId, '--credential', keyId.toUpperCase(), '--reason', 'ticket-7']);
    expect({ code: rotated.code, stderr: rotated.stderr }).toEqual({ code: 0, stderr: '' });
    expect(rotated.result).toEqual({ credentialId: keyId, fromVersion: 1, version: 2, method: 'generator' });

    const revoked = await cli(['revoke', '--tenant', tenantId, '--credential', keyId.toUpperCase(), '--reason', 'leaked']);
    expect({ code: revoked.code, stderr: revoked.stderr }).toEqual({ code: 0, stderr: '' });
    expect(revoked.result).toEqual({ revoked: [keyId], vaultVersionsDisabled: 2, vaultFailures: [], gone: [] });
    expect(await statusOf(keyId)).toBe('revoked');
  }, 120_000);

  it("webhook:rotate --activate takes the staged secret's rotation id in upper case", async () => {
    const flags = ['--tenant', tenantId, '--integration', 'stripe', '--connection', 'main'];
    const staged = await cli(['webhook:rotate', ...flags, '--stage']);
    expect(staged.code).toBe(0);
    const rotationId = staged.result!.rotationId as string;
    const activated = await cli(['webhook:rotate', ...flags, '--activate', '--rotation', rotationId.toUpperCase()]);
    expect({ code: activated.code, stderr: activated.stderr }).toEqual({ code: 0, stderr: '' });
    expect(activated.result).toMatchObject({ credentialId: webhookId, outcome: 'rotated', rotationId, version: 2 });
  }, 120_000);
});
