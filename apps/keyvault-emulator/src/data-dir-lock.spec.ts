import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataDirLock, EmulatorDataDirInUseError, LOCK_FILE, processStart } from './data-dir-lock';

/** One vault per data dir: a live holder refuses a second vault; a file its dead (or replaced) writer left does not. */
describe('DataDirLock (emulator.pid)', () => {
  let dir: string;
  let other: ChildProcess;
  const pidFile = () => join(dir, LOCK_FILE);
  beforeAll(() => {
    other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
  });
  afterAll(() => other.kill('SIGKILL'));
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kv-emu-lock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes its pid with its start, and removes the file on release', () => {
    const lock = DataDirLock.acquire(dir);
    expect(readFileSync(pidFile(), 'utf8')).toBe(`${process.pid} ${processStart(process.pid)}\n`);
    lock.release();
    expect(() => readFileSync(pidFile())).toThrow(/ENOENT/);
  });

  it('refuses a data dir another live process holds, whether its file names the start or only the pid (older files)', () => {
    const start = processStart(other.pid!);
    expect(start).toMatch(/^[0-9a-f-]+:\d+$/);
    for (const content of [`${other.pid} ${start}\n`, `${other.pid}\n`]) {
      writeFileSync(pidFile(), content);
      expect(() => DataDirLock.acquire(dir)).toThrow(EmulatorDataDirInUseError);
      expect(readFileSync(pidFile(), 'utf8')).toBe(content);
    }
  });

  it("says what holds the dir and how to pick another in the words of whoever started the vault (library user or host): no host or CLI advice", () => {
    writeFileSync(pidFile(), `${other.pid}\n`);
    const e = (() => {
      try {
        return DataDirLock.acquire(dir);
      } catch (err) {
        return err as EmulatorDataDirInUseError;
      }
    })() as EmulatorDataDirInUseError;
    expect([e.code, e.dataDir, e.pid]).toEqual(['DATA_DIR_IN_USE', dir, other.pid]);
    expect(e.message).toBe(
      `The local Key Vault's data dir ${dir} is held by another process (pid ${other.pid}) that runs a local Key Vault on it: ` +
        "two vaults on one data dir do not see each other's writes and overwrite each other's files. Stop that process, or " +
        'start this vault with another dataDir (leave it out for a temporary one). ' +
        `If process ${other.pid} runs no local Key Vault, delete ${pidFile()}.`,
    );
    expect(e.message).not.toMatch(/host|CLI|KEY_VAULT_URL|EMULATOR_/);
  });

  it('takes over a file whose pid another process now has (a killed vault, its pid reused after a reboot or a wrap)', () => {
    const [bootId, ticks] = processStart(other.pid!)!.split(':');
    for (const stale of [`${bootId}:${Number(ticks) + 1}`, `00000000-0000-0000-0000-000000000000:${ticks}`]) {
      writeFileSync(pidFile(), `${other.pid} ${stale}\n`);
      const lock = DataDirLock.acquire(dir);
      expect(readFileSync(pidFile(), 'utf8')).toBe(`${process.pid} ${processStart(process.pid)}\n`);
      lock.release();
    }
  });

  it('rewrites a file naming its own pid but another start (a vault of the same pid before a restart): the next process must see it live', () => {
    const [bootId, ticks] = processStart(process.pid)!.split(':');
    writeFileSync(pidFile(), `${process.pid} ${bootId}:${Number(ticks) - 1}\n`);
    const lock = DataDirLock.acquire(dir);
    // Kept as it was, the stale start would tell the next process this pid was reused: it would take the dir over.
    expect(readFileSync(pidFile(), 'utf8')).toBe(`${process.pid} ${processStart(process.pid)}\n`);
    lock.release();
    expect(() => readFileSync(pidFile())).toThrow(/ENOENT/);
  });

  it('takes over a file whose process is gone', () => {
    writeFileSync(pidFile(), `2147483646 ${processStart(process.pid)}\n`);
    DataDirLock.acquire(dir).release();
    expect(() => readFileSync(pidFile())).toThrow(/ENOENT/);
  });

  it('reads the start of a process whose name holds spaces and parentheses', async () => {
    // Node sets the thread's name (what /proc/<pid>/stat shows in parentheses) from process.title.
    const odd = spawn(process.execPath, ['-e', "process.title = 'a) b (c'; setTimeout(() => {}, 30_000)"], { stdio: 'ignore' });
    try {
      const stat = () => readFileSync(`/proc/${odd.pid}/stat`, 'utf8');
      for (let i = 0; i < 100 && !stat().includes('(a) b (c)'); i++) await new Promise((r) => setTimeout(r, 20));
      expect(stat()).toContain('(a) b (c)');
      const ticks = stat().split(') ').pop()!.split(' ')[19];
      expect(processStart(odd.pid!)).toBe(`${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}:${ticks}`);
    } finally {
      odd.kill('SIGKILL');
    }
  });
});
