import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeRequireHook } from './swc-require-hook';

/** The require hook of test child processes: what it compiled is reused by the next child, never once the source changed. */
describe('writeRequireHook', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'cv-require-hook-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('compiles a file once for every child, and again once it changed', () => {
    const cache = join(dir, 'cache');
    const hook = writeRequireHook(dir, {}, cache);
    const child = join(dir, 'child.ts');
    const run = () => execFileSync(process.execPath, ['--require', hook, child], { encoding: 'utf8' }).trim();
    const entries = () => readdirSync(cache).sort();

    writeFileSync(child, 'const answer: number = 1;\nconsole.log(`compiled ${answer}`);\n');
    expect(run()).toBe('compiled 1');
    const [entry, ...others] = entries();
    expect(others).toEqual([]);
    expect(entry).toMatch(/^[0-9a-f]{64}\.js$/);

    // The next child runs the entry, not a new compile: one that says so tells.
    writeFileSync(join(cache, entry), 'console.log("from the cache");\n');
    expect(run()).toBe('from the cache');
    expect(entries()).toEqual([entry]);

    // An edited file is compiled anew (its own entry), however recent the old one.
    writeFileSync(child, 'const answer: number = 2;\nconsole.log(`compiled ${answer}`);\n');
    expect(run()).toBe('compiled 2');
    expect(entries()).toHaveLength(2);

    // So is the same file under other compile options (another alias).
    expect(execFileSync(process.execPath, ['--require', writeRequireHook(dir, { '@app/other': ['x.ts'] }, cache), child], { encoding: 'utf8' }).trim()).toBe('compiled 2');
    expect(entries()).toHaveLength(3);
  });
});
