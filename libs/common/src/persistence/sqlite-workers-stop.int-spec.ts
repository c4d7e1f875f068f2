import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeRequireHook } from '@app/testing';

const CHILD = join(__dirname, '..', 'testing', 'sqlite-workers-stop.child.ts');

/**
 * The workers are unreferenced so that a forgotten one never holds a process open; their `stop()` must still
 * keep it alive until the thread has ended. Under jest something else always does, so this runs in a child
 * process with nothing else pending — as an app's `await app.close()` at the end of a script.
 */
describe('SqliteWriteWorker and SqliteWalCheckpointer: stop() in a process with nothing else to keep it alive', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cv-workers-stop-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('resolves, so the shutdown goes on to close the database', () => {
    const hook = writeRequireHook(dir);
    const run = spawnSync(process.execPath, ['--no-warnings', '--require', hook, CHILD, join(dir, 'db.sqlite')], {
      cwd: join(__dirname, '..', '..', '..', '..'),
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
    expect(run.stdout.trim().split('\n')).toEqual(['WRITTEN', 'WRITE_WORKER_STOPPED', 'CHECKPOINTER_STOPPED', 'CLOSED']);
  });
});
