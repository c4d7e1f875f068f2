import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/** DATABASE_PATH names a file whose directory is not one and cannot be made one: says which part and why. */
export class DatabasePathError extends Error {
  override readonly name = 'DatabasePathError';
  readonly code = 'DATABASE_PATH';

  constructor(path: string, problem: string, cause?: unknown) {
    super(`cannot use the SQLite database file ${path} (DATABASE_PATH): ${problem}`, { cause });
  }
}

/** `EACCES: permission denied` of Node's `EACCES: permission denied, mkdir '/x'` (the path is named by the caller). */
function reasonOf(e: unknown): string {
  const message = (e as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message.split(', ')[0] : String(e);
}

function errnoOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Creates the missing directories of SQLite file `path` one at a time, from the deepest one that exists down.
 * Not Node's `mkdirSync(…, { recursive: true })`: it reads ENOENT as "a parent is missing", so under a file system
 * that answers ENOENT to every mkdir (procfs, sysfs) it makes the existing parent and retries the child forever,
 * and a regular file in the way comes out as a bare `EEXIST … mkdir`.
 */
export function ensureDatabaseDirectory(path: string): void {
  const missing: string[] = [];
  let dir = dirname(path);
  for (;;) {
    let stat;
    try {
      stat = statSync(dir);
    } catch (e) {
      // ENOTDIR: a file further up, found on the way.
      if (errnoOf(e) !== 'ENOENT' && errnoOf(e) !== 'ENOTDIR') throw new DatabasePathError(path, `cannot read ${dir} (${reasonOf(e)})`, e);
      const parent = dirname(dir);
      if (parent === dir) throw new DatabasePathError(path, `${dir} does not exist`, e);
      missing.unshift(dir);
      dir = parent;
      continue;
    }
    if (!stat.isDirectory()) throw new DatabasePathError(path, `${dir} is a file, not a directory`);
    break;
  }
  for (const next of missing) {
    try {
      mkdirSync(next);
    } catch (e) {
      // Made meanwhile by another process starting on the same path.
      if (errnoOf(e) === 'EEXIST' && statSync(next, { throwIfNoEntry: false })?.isDirectory()) continue;
      const parentExists = errnoOf(e) === 'ENOENT' ? `, although ${dirname(next)} exists: that file system takes no new directories` : '';
      throw new DatabasePathError(path, `cannot create the directory ${next} (${reasonOf(e)}${parentExists})`, e);
    }
  }
}
