import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmulatorDataDirInUseError, LOCK_FILE } from './data-dir-lock';
import { runEmulatorCli } from './main';

describe('emulator CLI: stopping on a signal', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'cv-emu-cli-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('its shutdown handler is installed before it prints the lines a supervisor waits for, so a SIGTERM sent on them stops it cleanly', async () => {
    // Without our handler Node's default action kills the process at once: the store is not flushed and
    // 'stopped' never printed. A supervisor that signals as soon as it reads the URL must not hit that.
    const before = process.listenerCount('SIGTERM'); // the test runner's own, if any
    const printed: { line: string; handled: boolean }[] = [];
    const print = (line: string) => {
      printed.push({ line, handled: process.listenerCount('SIGTERM') > before });
      if (line.startsWith('Data dir: ')) setImmediate(() => process.emit('SIGTERM', 'SIGTERM'));
    };
    const log = jest.spyOn(console, 'log').mockImplementation(print);
    const warn = jest.spyOn(console, 'warn').mockImplementation(print); // the banner
    try {
      await runEmulatorCli(['--port', '0', '--data-dir', dir]);
    } finally {
      log.mockRestore();
      warn.mockRestore();
    }
    const ready = printed.filter((p) => /Key Vault emulator listening at|^(Vault URL|CA certificate|Data dir): /.test(p.line));
    expect(ready).toHaveLength(4);
    expect(ready.filter((p) => !p.handled)).toEqual([]);
    expect(printed.map((p) => p.line)).toContain('Key Vault emulator stopped.');
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });
});

describe('emulator CLI: a data dir another process holds', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'cv-emu-cli-held-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("says how to choose another in its own flag (--data-dir; leaving it out is ./data/vault, not a temporary dir)", async () => {
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    try {
      const held = join(dir, 'held');
      mkdirSync(held);
      writeFileSync(join(held, LOCK_FILE), `${other.pid}\n`);
      const e = (await runEmulatorCli(['--port', '0', '--data-dir', held]).then(
        () => undefined,
        (err: unknown) => err,
      )) as EmulatorDataDirInUseError;
      expect(e).toBeInstanceOf(EmulatorDataDirInUseError);
      expect([e.dataDir, e.pid]).toEqual([held, other.pid]);
      expect(e.message).toContain(`The local Key Vault's data dir ${held} is held by another process (pid ${other.pid})`);
      expect(e.message).toContain('Stop that process, or pass another --data-dir.');
      expect(e.message).not.toContain('dataDir');
    } finally {
      other.kill('SIGKILL');
    }
  });
});
