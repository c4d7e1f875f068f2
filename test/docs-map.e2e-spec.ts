import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..');
const read = (doc: string) => readFileSync(join(root, doc), 'utf8');
const DOCS = ['README.md', 'docs/ARCHITECTURE.md', 'docs/OPERATIONS.md', 'docs/SECURITY.md', 'docs/RELIABILITY.md', ...readdirSync(join(root, 'libs')).map((l) => `libs/${l}/README.md`)];

/** Every tracked file and folder, as paths from the repo root. */
function trackedPaths(): Set<string> {
  const paths = new Set<string>();
  for (const file of execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean)) {
    const parts = file.split('/');
    for (let i = 1; i <= parts.length; i++) paths.add(parts.slice(0, i).join('/'));
  }
  return paths;
}

/**
 * Code paths a doc names in backticks: `apps/api/src/http`, `cache/byte-arena.ts`, `test/support/stack.ts`.
 * Docs write them from the repo root or from the folder they describe (a lib's src), so a path is found when a
 * tracked path is it or ends with it. Runtime and build output (`./data/…`, `dist/…`), media types, routes and
 * templates (`<name>`) are not code paths.
 */
function namedPaths(doc: string): string[] {
  return [...read(doc).matchAll(/`(\.?\/?[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)+\/?|[A-Za-z0-9_-]+\.(?:ts|mjs|yml|proto|md))`/g)]
    .map((m) => m[1].replace(/^\.\//, '').replace(/\/$/, ''))
    .filter((p) => !/^(data|dist|application|text)\//.test(p) && !p.startsWith('/'));
}

describe('the docs name only paths that exist, and the architecture map names every lib, app and host folder', () => {
  const tracked = trackedPaths();
  const all = [...tracked];
  const exists = (p: string) => [p, `${p}.ts`].some((c) => tracked.has(c) || all.some((t) => t.endsWith(`/${c}`)));

  it.each(DOCS)('%s: every code path it names exists', (doc) => {
    const named = namedPaths(doc);
    expect(named.filter((p) => !exists(p))).toEqual([]);
  });

  it('docs/ARCHITECTURE.md names every lib (`@app/<lib>`), every app and every folder of the host', () => {
    const map = read('docs/ARCHITECTURE.md');
    const libs = readdirSync(join(root, 'libs')).filter((l) => !map.includes(`@app/${l}`));
    const apps = readdirSync(join(root, 'apps')).filter((a) => !map.includes(`apps/${a}`));
    const hostFolders = readdirSync(join(root, 'apps/api/src'), { withFileTypes: true })
      .filter((d) => d.isDirectory() && tracked.has(`apps/api/src/${d.name}`))
      .map((d) => d.name)
      .filter((d) => !new RegExp(`\`(apps/api/src/)?${d}/`).test(map));
    expect({ libs, apps, hostFolders }).toEqual({ libs: [], apps: [], hostFolders: [] });
  });
});
