import type { KeyVaultEmulator } from '@app/keyvault-emulator';
import type { CommandRunner } from 'nest-commander';

/**
 * The host's variables for a local vault running on its own (an "external" vault over HTTPS): what a
 * CLI needs while the host that owns the database is stopped or running elsewhere.
 */
export function externalVaultEnv(vault: KeyVaultEmulator): Record<string, string> {
  return {
    KEY_VAULT_URL: vault.vaultUrl,
    KEY_VAULT_CREDENTIAL: 'static',
    KEY_VAULT_CA_CERT_PATH: vault.caCertPath,
    KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
  };
}

/**
 * Runs a CLI command as `npm run cli -- …` would, with `env` as the whole environment; returns what it
 * printed (`text`, and parsed as JSON in `result`) and the exit code it set. The process's environment,
 * exit code and stdout are restored afterwards, also when the command throws.
 */
export async function runCli(
  env: Record<string, string>,
  command: CommandRunner,
  flags: Record<string, unknown>,
): Promise<{ exitCode: number | string | undefined; text: string; result: Record<string, any> }> {
  const savedEnv = process.env;
  const savedExit = process.exitCode;
  const out: string[] = [];
  const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => (out.push(String(chunk)), true));
  process.env = { ...env };
  process.exitCode = undefined;
  try {
    await command.run([], flags);
    const text = out.join('');
    return { exitCode: process.exitCode, text, result: JSON.parse(text) as Record<string, any> };
  } finally {
    process.env = savedEnv;
    process.exitCode = savedExit;
    write.mockRestore();
  }
}
