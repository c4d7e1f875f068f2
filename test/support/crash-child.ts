import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

export interface CrashChild {
  child: ChildProcess;
  /** The value of the first `<prefix> <value>` line the child prints; rejects if it exits first or after `timeoutMs`. */
  line: Promise<string>;
}

export interface CrashChildOptions {
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Arguments after the script. */
  args?: string[];
  /** @default 60000 */
  timeoutMs?: number;
}

/**
 * Starts a TypeScript child process of a crash test (`node --require <hook> <script> ...args`, the hook from
 * `writeRequireHook`) in the repository root, and waits for the `<prefix> <value>` line that says it reached its crash
 * point; then the test kills it with `killHard`.
 */
export function startCrashChild(hook: string, script: string, prefix: string, options: CrashChildOptions = {}): CrashChild {
  const { env = {}, args = [], timeoutMs = 60_000 } = options;
  const child = spawn(process.execPath, ['--no-warnings', '--require', hook, script, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const line = new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the child printed no ${prefix} in time; stderr: ${stderr}`)), timeoutMs);
    child.stdout!.on('data', (d) => {
      out += d;
      const match = out.match(new RegExp(`^${prefix} (\\S+)$`, 'm'));
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the child exited (${code ?? signal}) before ${prefix}; stderr: ${stderr}`));
    });
  });
  return { child, line };
}

/** SIGKILL: no shutdown hook, no flush; resolves with the signal the child died of. */
export function killHard(child: ChildProcess): Promise<NodeJS.Signals | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.signalCode);
    child.once('exit', (_code, signal) => resolve(signal));
    child.kill('SIGKILL');
  });
}
