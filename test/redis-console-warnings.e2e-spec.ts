import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { embeddedBackends } from './support/backends';
import { REDIS_URL } from './support/database';
import { ROTATION_JOBS_OFF } from './support/host';
import { deleteRedisKeys, requireRedis } from './support/replica';
import { writeRequireHook } from './support/swc-require-hook';

const ROOT = join(__dirname, '..');
const MAIN = join(ROOT, 'apps', 'api', 'src', 'main.ts');

interface Printed {
  stdout: string;
  stderr: string;
}

/**
 * What the host as `npm start` runs it (main.ts) prints with `env`, from its start to its exit: started, asked for
 * readiness once it listens (every Redis connection is up by then), then sent SIGTERM.
 */
async function printedBy(dir: string, suffix: string, env: Record<string, string>): Promise<Printed> {
  const child = spawn(process.execPath, ['--no-warnings', '--require', writeRequireHook(dir), MAIN], {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'warn', PORT: '0', ...embeddedBackends(env, dir, suffix), ...ROTATION_JOBS_OFF, OAUTH_PROACTIVE_ENABLED: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const printed: Printed = { stdout: '', stderr: '' };
  child.stdout.on('data', (d) => (printed.stdout += d));
  child.stderr.on('data', (d) => (printed.stderr += d));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  try {
    const listening = /listening on (http:\/\/[^\s"]+)/;
    for (const until = Date.now() + 60_000; !listening.test(printed.stdout) && Date.now() < until; ) await new Promise((r) => setTimeout(r, 100));
    const base = listening.exec(printed.stdout)?.[1].replace('[::1]', '127.0.0.1');
    if (!base) throw new Error(`the host did not start listening:\n${printed.stdout}\n${printed.stderr}`);
    expect((await fetch(`${base}/health/ready`)).status).toBe(200);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  return printed;
}

/** Each line printed, parsed: a line that is not JSON fails the test, naming it. */
function jsonLines(printed: Printed): { level: number; context?: string; msg: string }[] {
  const lines = `${printed.stdout}\n${printed.stderr}`.split('\n').filter((l) => l.trim() !== '');
  expect(lines.filter((l) => !/^\{.*\}$/.test(l))).toEqual([]);
  return lines.map((l) => JSON.parse(l) as { level: number; context?: string; msg: string });
}

/**
 * ioredis writes some warnings with console.warn, on stderr as plain text beside the host's JSON log, once per connection
 * and connect: a password given to a Redis that requires none, and its ready check skipped when the user may not run
 * INFO. The host logs them as its own lines (context Redis, once) and prints nothing else but JSON.
 */
describe('what the host prints when ioredis warns (main.ts, the shared Redis)', () => {
  const prefix = `cvt-warn-${randomBytes(4).toString('hex')}:`;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const user = `cvt-noinfo-${randomBytes(4).toString('hex')}`;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cv-redis-warn-'));
    const admin = await requireRedis();
    try {
      // The warning's condition: the shared Redis's default user takes no password.
      expect(await admin.call('ACL', 'GETUSER', 'default')).toEqual(expect.arrayContaining([expect.arrayContaining(['nopass'])]));
      await admin.call('ACL', 'SETUSER', user, 'on', `>${password}`, '~*', '&*', '+@all', '-info');
    } finally {
      await admin.quit();
    }
  });

  afterAll(async () => {
    const admin = await requireRedis();
    await admin.call('ACL', 'DELUSER', user);
    await deleteRedisKeys(admin, prefix);
    await admin.quit();
    rmSync(dir, { recursive: true, force: true });
  });

  const as = (username: string, pw: string) => {
    const url = new URL(REDIS_URL);
    url.username = username;
    url.password = pw;
    return url.toString();
  };

  it('a password Redis does not require: JSON lines only, the warning once in the log, without the password', async () => {
    const printed = await printedBy(dir, 'a', { REDIS_URL: as('', password), REDIS_KEY_PREFIX: prefix });
    const redis = jsonLines(printed).filter((l) => l.context === 'Redis');
    expect(redis.map((l) => [l.level, l.msg])).toEqual([
      [40, 'REDIS_URL gives a password, and Redis requires none (its AUTH refused it): the connection goes on without; remove the password from REDIS_URL, or set one on Redis'],
    ]);
    expect(`${printed.stdout}${printed.stderr}`).not.toContain(password);
  }, 90_000);

  it('a user that may not run INFO: JSON lines only, the skipped ready check once in the log, naming no user', async () => {
    const printed = await printedBy(dir, 'b', { REDIS_URL: as(user, password), REDIS_KEY_PREFIX: prefix });
    const redis = jsonLines(printed).filter((l) => l.context === 'Redis');
    expect(redis.map((l) => [l.level, l.msg])).toEqual([
      [40, 'Redis refused INFO (NOPERM): ioredis skips its check that Redis has loaded its data, so commands may meet a Redis still loading; give the REDIS_URL user INFO'],
    ]);
    expect(`${printed.stdout}${printed.stderr}`).not.toContain(user);
  }, 90_000);
});
