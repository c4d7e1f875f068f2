import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

/**
 * Where the hooks keep what they compiled, shared by every child of every test: each child compiled the same ~400
 * files again (~0.4 s of CPU a process, and a suite starts dozens). An entry is named by the compile options, the
 * swc version, the file's path and its source, so an edited file or changed options never meet an old entry.
 */
export const REQUIRE_HOOK_CACHE = join(tmpdir(), `cv-swc-require-hook-${process.getuid?.() ?? 'user'}`);
/** Entries older than this are removed (once a process): every edit leaves one behind. */
const CACHE_KEPT_MS = 7 * 24 * 3600_000;
const pruned = new Set<string>();

function prune(cache: string): void {
  if (pruned.has(cache)) return;
  pruned.add(cache);
  let names: string[];
  try {
    names = readdirSync(cache);
  } catch {
    return; // none yet
  }
  const before = Date.now() - CACHE_KEPT_MS;
  for (const name of names) {
    try {
      if (statSync(join(cache, name)).mtimeMs < before) rmSync(join(cache, name), { force: true });
    } catch {
      // Removed by another process meanwhile.
    }
  }
}

/**
 * Writes into `dir` a require hook that compiles our TypeScript with @swc/core as jest does (the repo has no
 * ts-node), resolving the @app/* aliases of .swcrc, for child processes of tests: `node --require <file> child.ts`.
 * `paths` overrides aliases, e.g. `{ '@app/testing': ['test/support/stack.ts'] }` for a child that must not load
 * the rest of the test support. What it compiles is kept in `cache`.
 */
export function writeRequireHook(dir: string, paths: Record<string, string[]> = {}, cache = REQUIRE_HOOK_CACHE): string {
  prune(cache);
  const swcrc = JSON.parse(readFileSync(join(ROOT, '.swcrc'), 'utf8')) as { jsc: { paths: Record<string, string[]> } };
  const options = {
    swcrc: false,
    sourceMaps: 'inline',
    module: { type: 'commonjs' },
    jsc: {
      target: 'es2022',
      baseUrl: ROOT,
      paths: { ...swcrc.jsc.paths, ...paths },
      parser: { syntax: 'typescript', decorators: true, dynamicImport: true },
      transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
      keepClassNames: true,
    },
  };
  const swc = require.resolve('@swc/core');
  const { version } = JSON.parse(readFileSync(join(swc, '..', 'package.json'), 'utf8')) as { version: string };
  const key = createHash('sha256').update(JSON.stringify({ version, options })).digest('hex');
  const file = join(dir, 'swc-register.js');
  writeFileSync(
    file,
    `const { mkdirSync, readFileSync, renameSync, writeFileSync } = require('node:fs');
const { createHash } = require('node:crypto');
const { join } = require('node:path');
const options = ${JSON.stringify(options)};
const cache = ${JSON.stringify(cache)};
let swc;
require.extensions['.ts'] = function (module, filename) {
  const source = readFileSync(filename, 'utf8');
  const entry = join(cache, createHash('sha256').update(${JSON.stringify(key)}).update(filename).update('\\0').update(source).digest('hex') + '.js');
  let code;
  try {
    code = readFileSync(entry, 'utf8');
  } catch {
    swc ??= require(${JSON.stringify(swc)});
    code = swc.transformSync(source, { filename, ...options }).code;
    // Written whole under another name, then renamed: a child starting beside this one never reads half an entry.
    try {
      mkdirSync(cache, { recursive: true });
      const part = entry + '.' + process.pid + '.part';
      writeFileSync(part, code);
      renameSync(part, entry);
    } catch {
      // No cache (a read-only temp dir): this child compiled; the next one will too.
    }
  }
  module._compile(code, filename);
};
`,
  );
  return file;
}
