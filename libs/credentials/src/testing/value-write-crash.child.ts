/**
 * Child process of orphan-versions.int-spec.ts and credential-delete-vault.int-spec.ts (run with an @swc/core require
 * hook, never by jest). Env: CV_TEST_DS (DataSource options JSON), CV_VAULT_URL + CV_VAULT_CA (the parent's local
 * vault), CV_TENANT, CV_CREDENTIAL, CV_VALUE, CV_STEP (`rotate`, the default, or `delete`).
 * - rotate: it rotates the credential to CV_VALUE through the real stack; its vault value store writes the new secret
 *   version (real SDK, real HTTPS), prints `WRITTEN <version>` and then never returns, so the parent kills the process
 *   with SIGKILL between the vault write and the commit.
 * - delete: it deletes the credential; once the delete committed, before any vault call of its vault side, it prints
 *   `COMMITTED <tenant>` and never returns, so the parent kills it between the commit and the vault calls.
 * - revoke: the same for a revoke: once its status change committed, at its first vault version disabled.
 */
import 'reflect-metadata';
import { Test } from '@nestjs/testing';
import { KeyVaultProvider } from '@app/key-vault';
import type { KeyVaultEmulator } from '@app/keyvault-emulator';
import { credentialsStackImports } from '@app/testing';
import type { DataSourceOptions } from 'typeorm';
import { CredentialsService } from '../credentials.service';
import type { ValueWriteRequest } from '../stores/credential-value-store';
import { VaultValueDeletion } from '../stores/vault-value-deletion';
import { VaultValueStore } from '../stores/vault-value-store';

async function main(): Promise<void> {
  const vault = { vaultUrl: process.env.CV_VAULT_URL, caCertPem: process.env.CV_VAULT_CA } as KeyVaultEmulator;
  const moduleRef = await Test.createTestingModule({
    imports: credentialsStackImports({
      database: JSON.parse(process.env.CV_TEST_DS ?? '{}') as DataSourceOptions,
      vault,
      keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20, breaker: { consecutiveFailures: 1000 } } },
      persistence: { outbox: { dispatch: false } },
    }),
  }).compile();
  await moduleRef.init();
  const ctx = { tenantId: process.env.CV_TENANT ?? '', actor: { id: 'user:ops' } };
  const hang = () => new Promise<never>(() => setInterval(() => undefined, 60_000)); // the parent kills us here
  const committed = async () => {
    process.stdout.write(`COMMITTED ${ctx.tenantId}\n`);
    return hang();
  };
  const step = process.env.CV_STEP;
  if (step === 'delete' || step === 'revoke') {
    if (step === 'delete') moduleRef.get(VaultValueDeletion).runNow = committed;
    else moduleRef.get(KeyVaultProvider).updateSecretProperties = committed;
    await moduleRef.get(CredentialsService)[step](ctx, process.env.CV_CREDENTIAL ?? '');
    process.stdout.write('UNEXPECTED returned\n');
    return;
  }
  const store = moduleRef.get(VaultValueStore);
  const write = store.write.bind(store);
  store.write = async (request: ValueWriteRequest) => {
    const pointer = await write(request);
    process.stdout.write(`WRITTEN ${pointer.vaultSecretVersion}\n`);
    return hang(); // before the commit
  };
  await moduleRef.get(CredentialsService).rotate(ctx, process.env.CV_CREDENTIAL ?? '', process.env.CV_VALUE ?? '');
  process.stdout.write('UNEXPECTED committed\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`child failed: ${(e as Error)?.name} ${(e as Error)?.message}\n`);
  process.exit(1);
});
