import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const LOCK_FILE = 'emulator.pid';

/**
 * Another live process's vault holds this data dir. Worded for whoever started this vault — code embedding it or a
 * host — so it gives no host or CLI advice: a host that starts one says its own (apps/api's EmbeddedVault).
 */
export class EmulatorDataDirInUseError extends Error {
  override readonly name = 'EmulatorDataDirInUseError';
  readonly code = 'DATA_DIR_IN_USE';
  /** The pid file naming the holder: to delete when that process runs no vault. */
  readonly lockFile: string;

  constructor(
    readonly dataDir: string,
    readonly pid: number,
    /** How whoever started it picks another dir: the start option by default, a CLI's flag from its CLI. */
    another = 'start this vault with another dataDir (leave it out for a temporary one)',
  ) {
    super(
      `The local Key Vault's data dir ${dataDir} is held by another process (pid ${pid}) that runs a local Key Vault on it: ` +
        `two vaults on one data dir do not see each other's writes and overwrite each other's files. Stop that process, or ${another}. ` +
        `If process ${pid} runs no local Key Vault, delete ${join(dataDir, LOCK_FILE)}.`,
    );
    this.lockFile = join(dataDir, LOCK_FILE);
  }
}

/**
 * One vault process per data dir: each keeps the store in memory and rewrites its files, so a second one (the CLI
 * started with another EMULATOR_PORT beside a running host) would lose writes both ways. A pid file, taken over when
 * its process is gone (killed); vaults of one process (tests restarting one in place) are not told apart.
 *
 * The file also names the process's start (Linux: boot id and start time from /proc), so a file left by a killed
 * vault whose pid another process now has — after a reboot, or pids wrapping — is taken over too, instead of
 * refusing the start until an operator deletes it. Where /proc is not there, a live pid is trusted as before.
 */
export class DataDirLock {
  private constructor(private readonly path: string | undefined) {}

  static acquire(dataDir: string): DataDirLock {
    const path = join(dataDir, LOCK_FILE);
    for (let attempt = 0; ; attempt++) {
      try {
        writeFileSync(path, `${[process.pid, processStart(process.pid) ?? ''].join(' ').trim()}\n`, { flag: 'wx', mode: 0o600 });
        return new DataDirLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      }
      const holder = readHolder(path);
      const pid = holder?.pid;
      // Ours (vaults of one process share it) — unless it names another start: a vault that had our pid before a
      // restart (containers reuse pids). Kept, its start would read as a reused pid to the next process, which would take over.
      if (pid === process.pid && !isReused(holder!)) return new DataDirLock(undefined);
      if (pid !== undefined && isAlive(pid) && !isReused(holder!)) throw new EmulatorDataDirInUseError(dataDir, pid);
      rmSync(path, { force: true }); // left by a process that is gone
    }
  }

  release(): void {
    if (this.path && readHolder(this.path)?.pid === process.pid) rmSync(this.path, { force: true });
  }
}

/** What a pid file says: the pid, and the process's start when it was written where /proc tells it. */
interface Holder {
  pid: number;
  start?: string;
}

function readHolder(path: string): Holder | undefined {
  try {
    const [first, ...rest] = readFileSync(path, 'utf8').trim().split(' ');
    const pid = Number(first);
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
    return rest.length ? { pid, start: rest.join(' ') } : { pid };
  } catch {
    return undefined;
  }
}

/**
 * A process's start, unique across reboots and pid reuse: the boot's id and the start time in clock ticks since
 * boot (field 22 of /proc/<pid>/stat, counted after the command name, which may hold spaces and parentheses).
 * Undefined without /proc (not Linux) or once the process is gone.
 */
export function processStart(pid: number): string | undefined {
  try {
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const startTicks = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return bootId && /^\d+$/.test(startTicks ?? '') ? `${bootId}:${startTicks}` : undefined;
  } catch {
    return undefined;
  }
}

/** The live process with the file's pid is not the one that wrote it (known only when both starts are). */
function isReused(holder: Holder): boolean {
  if (holder.start === undefined) return false;
  const now = processStart(holder.pid);
  return now !== undefined && now !== holder.start;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * `dir` and its missing parents made one level at a time (mode 0700). Not Node's recursive `mkdirSync`: where every
 * mkdir answers ENOENT (procfs, sysfs) it made the existing parent and retried the child forever, at 100% CPU and
 * deaf to SIGTERM. Here that, like any other refusal, is one error naming the data dir.
 */
export function makeDataDir(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d) && dirname(d) !== d; d = dirname(d)) missing.unshift(d);
  for (const d of missing) {
    try {
      mkdirSync(d, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue; // made meanwhile by another process
      throw new Error(`KeyVaultEmulator: cannot create the data dir ${dir} (${(e as Error).message.split(', ')[0]} at ${d})`, { cause: e });
    }
  }
}
