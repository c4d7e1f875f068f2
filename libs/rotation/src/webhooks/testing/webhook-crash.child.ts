/**
 * Child process of webhook-sigkill.int-spec.ts (run with an @swc/core require hook, never by jest).
 * Env: CV_TEST_DS (DataSource options JSON), CV_VAULT_URL + CV_VAULT_CA (the parent's local vault),
 * CV_TENANT, CV_CREDENTIAL. It rotates the credential with an updater that prints
 * `PUSHED <rotationId>` once the provider "has" the secret and then never returns, so the parent
 * kills the process with SIGKILL between the push and the promotion.
 */
import 'reflect-metadata';
import { ManualClock } from '@app/common';
import type { KeyVaultEmulator } from '@app/keyvault-emulator';
import type { TestDatabase } from '@app/testing';
import type { DataSourceOptions } from 'typeorm';
import { startWebhookStack } from './webhook-stack';

async function main(): Promise<void> {
  const db = { kind: 'sqlite', options: JSON.parse(process.env.CV_TEST_DS ?? '{}') as DataSourceOptions, drop: async () => undefined } as TestDatabase;
  const vault = { vaultUrl: process.env.CV_VAULT_URL, caCertPem: process.env.CV_VAULT_CA } as KeyVaultEmulator;
  const stack = await startWebhookStack(db, vault, new ManualClock(new Date()));
  stack.updaters.register('stripe', {
    update: async ({ rotationId }) => {
      process.stdout.write(`PUSHED ${rotationId}\n`);
      await new Promise(() => setInterval(() => undefined, 60_000)); // the parent kills us here
    },
  });
  await stack.service.rotate({ tenantId: process.env.CV_TENANT ?? '', actor: { id: 'user:ops' } }, process.env.CV_CREDENTIAL ?? '');
  process.stdout.write('UNEXPECTED completed\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`child failed: ${(e as Error)?.name} ${(e as Error)?.message}\n`);
  process.exit(1);
});
