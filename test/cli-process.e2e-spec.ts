import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeRequireHook } from './support/swc-require-hook';

const ROOT = join(__dirname, '..');
const MAIN = join(ROOT, 'apps', 'cli', 'src', 'main.ts');

/** The CLI as `npm run cli --` runs it: what an operator (or a CI log) sees of a mistyped command line. */
describe('the CLI process', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'cv-cli-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--no-warnings', '--require', writeRequireHook(dir), MAIN, ...args], {
        cwd: ROOT,
        env: { ...process.env, NODE_ENV: 'test', DATABASE_PATH: join(dir, 'db.sqlite'), EMULATOR_DATA_DIR: join(dir, 'vault') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });

  it('an unknown option exits 1 naming the option, never the value given with it (it may be a secret)', async () => {
    const r = await run(['audit:verify', '--client-secret=LEAKMARKER-cli-7f3a']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("unknown option '--client-secret=…'");
    expect(r.stdout + r.stderr).not.toContain('LEAKMARKER');
  }, 60_000);
});
