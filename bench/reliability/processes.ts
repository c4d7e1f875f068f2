import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildHost, type HostBuild } from '../../test/cluster/replicas';

/**
 * The reference host as a real process. From dist/ (`npm run reliability`): a private copy of the
 * compiled apps/ and libs/ taken when the part starts — a long run spawns hosts for many minutes, and
 * dist/ may be rebuilt meanwhile by other work on the tree (a host booting from files being rewritten).
 * Under jest, from TypeScript: a fresh swc build of apps/ and libs/, as the cluster spec does.
 */
export async function hostBuild(): Promise<HostBuild> {
  const dist = join(__dirname, '..', '..');
  if (!__filename.endsWith('.js') || !existsSync(join(dist, 'apps', 'api', 'src', 'main.js'))) return buildHost();
  const dir = mkdtempSync(join(tmpdir(), 'cv-reliability-host-'));
  try {
    for (const d of ['apps', 'libs']) cpSync(join(dist, d), join(dir, d), { recursive: true });
    // Module resolution walks up from the copied files; the keys' protos are found upwards too.
    symlinkSync(join(dist, '..', 'node_modules'), join(dir, 'node_modules'), 'dir');
    if (existsSync(join(dist, '..', 'proto'))) symlinkSync(join(dist, '..', 'proto'), join(dir, 'proto'), 'dir');
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { mainJs: join(dir, 'apps', 'api', 'src', 'main.js'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The CLI of the same build (`apps/cli/src/main.js` beside the host's main). */
export const cliMain = (build: HostBuild): string => join(build.mainJs, '..', '..', '..', 'cli', 'src', 'main.js');

/** Resident set size of a process in bytes (Linux /proc). */
export async function rssBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  if (!kb) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kb) * 1024;
}
