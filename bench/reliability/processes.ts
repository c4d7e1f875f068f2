import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { buildHost, type HostBuild } from '../../test/cluster/replicas';

/**
 * The reference host as a real process: the compiled tree this file runs from (`npm run reliability`
 * runs from dist/), or — under jest, from TypeScript — a fresh swc build of apps/ and libs/, as the
 * cluster spec does.
 */
export async function hostBuild(): Promise<HostBuild> {
  const compiled = join(__dirname, '..', '..', 'apps', 'api', 'src', 'main.js');
  if (__filename.endsWith('.js') && existsSync(compiled)) return { mainJs: compiled, remove: () => undefined };
  return buildHost();
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
