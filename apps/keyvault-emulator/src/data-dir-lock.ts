import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const LOCK_FILE = 'emulator.pid';

/** Another live process's vault holds this data dir. */
export class EmulatorDataDirInUseError extends Error {
  override readonly name = 'EmulatorDataDirInUseError';
  readonly code = 'DATA_DIR_IN_USE';

  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(
      `The Key Vault data dir ${dataDir} is in use by the local Key Vault of process ${pid} (a running host's embedded ` +
        'vault, or `npm run emulator`): two vaults on one data dir do not see each other\'s writes and overwrite each ' +
        'other\'s files. Stop the host before running a CLI command on its data, or set KEY_VAULT_URL to that vault\'s URL. ' +
        `If process ${pid} is no vault, delete ${join(dataDir, LOCK_FILE)}.`,
    );
  }
}

/**
 * One vault process per data dir: each keeps the store in memory and rewrites its files, so a second one (the CLI
 * started with another EMULATOR_PORT beside a running host) would lose writes both ways. A pid file, taken over when
 * its process is gone (killed); vaults of one process (tests restarting one in place) are not told apart.
 */
export class DataDirLock {
  private constructor(private readonly path: string | undefined) {}

  static acquire(dataDir: string): DataDirLock {
    const path = join(dataDir, LOCK_FILE);
    for (let attempt = 0; ; attempt++) {
      try {
        writeFileSync(path, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
        return new DataDirLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      }
      const pid = readPid(path);
      if (pid === process.pid) return new DataDirLock(undefined);
      if (pid !== undefined && isAlive(pid)) throw new EmulatorDataDirInUseError(dataDir, pid);
      rmSync(path, { force: true }); // left by a process that is gone
    }
  }

  release(): void {
    if (this.path && readPid(this.path) === process.pid) rmSync(this.path, { force: true });
  }
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
