import { Logger, OnApplicationShutdown } from '@nestjs/common';
import { EmulatorDataDirInUseError, KeyVaultEmulator } from '@app/keyvault-emulator';
import type { AppConfig } from '../config/app.config';

/**
 * The local Key Vault the host starts in-process when no KEY_VAULT_URL is configured (the embedded
 * default for development). Never used in production: config validation refuses that.
 */
export class EmbeddedVault implements OnApplicationShutdown {
  private readonly logger = new Logger(EmbeddedVault.name);

  private constructor(readonly emulator: KeyVaultEmulator | undefined) {}

  static async start(config: AppConfig): Promise<EmbeddedVault> {
    if (config.keyVault.mode !== 'embedded') return new EmbeddedVault(undefined);
    let emulator: KeyVaultEmulator;
    try {
      emulator = await KeyVaultEmulator.start({
        port: config.keyVault.emulatorPort,
        dataDir: config.keyVault.emulatorDataDir,
        quiet: config.env === 'test',
      });
    } catch (e) {
      // Usually the host already runs this vault (a CLI command started beside it, or a second host): say so.
      if (e instanceof EmulatorDataDirInUseError) throw new EmbeddedVaultDataDirInUseError(e);
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      throw new EmbeddedVaultPortInUseError(config.keyVault.emulatorPort, e);
    }
    new Logger(EmbeddedVault.name).warn(
      `Using the embedded LOCAL Key Vault at ${emulator.vaultUrl} (data in ${emulator.dataDir}). ` +
        'For development and tests only: never put production secrets in it. Set KEY_VAULT_URL to use Azure Key Vault.' +
        // PostgreSQL is how replicas share a database; this vault is this process's own, and nothing else tells them.
        (config.database.type === 'postgres'
          ? ' This vault is this process\'s own: other replicas on this database cannot read the values this one stores (VALUE_MISSING, 500), ' +
            'nor this one theirs. For replicas run one local vault on its own and set KEY_VAULT_URL on each (docs/OPERATIONS.md, "Replicas without Docker").'
          : ''),
    );
    return new EmbeddedVault(emulator);
  }

  async onApplicationShutdown(): Promise<void> {
    if (!this.emulator) return;
    await this.emulator.stop();
    this.logger.log('Embedded local Key Vault stopped');
  }
}

/** The embedded vault's port is taken: most often by the running host's own embedded vault. */
export class EmbeddedVaultPortInUseError extends Error {
  override readonly name = 'EmbeddedVaultPortInUseError';
  readonly code = 'EADDRINUSE';

  constructor(port: number, cause: unknown) {
    super(
      `The embedded local Key Vault cannot listen on port ${port} (EMULATOR_PORT): it is in use, usually by a running host's ` +
        'embedded vault. Stop the host before running a CLI command on its data, or set KEY_VAULT_URL (an external vault). ' +
        'Another EMULATOR_PORT is no way round it while the host runs: its vault would use the same data dir.',
      { cause },
    );
  }
}

/**
 * The embedded vault's data dir is held by another process's vault: the local vault's own message is for code that
 * starts it (`dataDir`); the host's and its CLI's way out is another, in their variables. It keeps the facts, not the
 * local vault's error as its cause: the host's failed-start log writes each cause's message (startFailureFields), and
 * that one's "another dataDir (leave it out for a temporary one)" is wrong here (EMULATOR_DATA_DIR left out is ./data/vault).
 */
export class EmbeddedVaultDataDirInUseError extends Error {
  override readonly name = 'EmbeddedVaultDataDirInUseError';
  readonly code = 'DATA_DIR_IN_USE';
  readonly dataDir: string;
  /** The process holding it. */
  readonly pid: number;
  /** The pid file naming it: to delete when that process runs no vault. */
  readonly lockFile: string;

  constructor(held: EmulatorDataDirInUseError) {
    super(
      `The embedded local Key Vault's data dir ${held.dataDir} (EMULATOR_DATA_DIR) is in use by the local Key Vault of process ${held.pid} ` +
        "(a running host's embedded vault, or `npm run emulator`): two vaults on one data dir do not see each other's writes " +
        "and overwrite each other's files. Stop the host before running a CLI command on its data, or set KEY_VAULT_URL to that " +
        "vault's URL; another EMULATOR_DATA_DIR is another vault, without this one's secrets. " +
        `If process ${held.pid} is no vault, delete ${held.lockFile}.`,
    );
    this.dataDir = held.dataDir;
    this.pid = held.pid;
    this.lockFile = held.lockFile;
  }
}
