/**
 * Child process of minted-value-crash.int-spec.ts (run with an @swc/core require hook, never by jest).
 * Env: CV_TEST_DS (DataSource options JSON), CV_VAULT_URL + CV_VAULT_CA (the parent's local vault), CV_TENANT,
 * CV_CREDENTIAL, CV_VALUE, CV_CRASH_AT. It rotates the credential through the real RotationModule with a handler that
 * "mints" CV_VALUE at the provider, then stops where CV_CRASH_AT says and never returns, so the parent kills the process
 * with SIGKILL there:
 * - `write` (default): when RotationService hands the value to the credentials lib for its write, before the vault
 *   write and the commit; it prints `STOPPED <credential id>`;
 * - `commit`: right after the new version committed, before RotationService goes on; it prints `STOPPED <version>`.
 */
import 'reflect-metadata';
import { ManualClock } from '@app/common';
import type { KeyVaultEmulator } from '@app/keyvault-emulator';
import type { TestDatabase } from '@app/testing';
import type { DataSourceOptions } from 'typeorm';
import { buildRotationStack } from '../../rotation-stack.testing';

async function main(): Promise<void> {
  const db = { kind: 'sqlite', options: JSON.parse(process.env.CV_TEST_DS ?? '{}') as DataSourceOptions, drop: async () => undefined } as TestDatabase;
  const vault = { vaultUrl: process.env.CV_VAULT_URL, caCertPem: process.env.CV_VAULT_CA } as KeyVaultEmulator;
  const handler = { mint: async () => ({ value: process.env.CV_VALUE ?? '' }) };
  const s = await buildRotationStack(db, vault, new ManualClock(new Date()), { handlers: [{ integrationId: 'acme', handler }] });
  const rotate = s.credentials.rotate.bind(s.credentials);
  s.credentials.rotate = async (ctx, id, value, options) => {
    if (process.env.CV_CRASH_AT === 'commit') process.stdout.write(`STOPPED ${(await rotate(ctx, id, value, options)).version}\n`);
    else process.stdout.write(`STOPPED ${id}\n`);
    return new Promise(() => setInterval(() => undefined, 60_000)); // the parent kills us here
  };
  await s.rotation.rotate({ tenantId: process.env.CV_TENANT ?? '', actor: { id: 'user:ops' } }, process.env.CV_CREDENTIAL ?? '', { reason: 'manual' });
  process.stdout.write('UNEXPECTED rotated\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`child failed: ${(e as Error)?.name} ${(e as Error)?.message}\n`);
  process.exit(1);
});
