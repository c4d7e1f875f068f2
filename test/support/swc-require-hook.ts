import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

/**
 * Writes into `dir` a require hook that compiles our TypeScript with @swc/core as jest does (the repo has no
 * ts-node), resolving the @app/* aliases of .swcrc, for child processes of tests: `node --require <file> child.ts`.
 * `paths` overrides aliases, e.g. `{ '@app/testing': ['test/support/stack.ts'] }` for a child that must not load
 * the rest of the test support.
 */
export function writeRequireHook(dir: string, paths: Record<string, string[]> = {}): string {
  const swcrc = JSON.parse(readFileSync(join(ROOT, '.swcrc'), 'utf8')) as { jsc: { paths: Record<string, string[]> } };
  const file = join(dir, 'swc-register.js');
  writeFileSync(
    file,
    `const { transformSync } = require(${JSON.stringify(require.resolve('@swc/core'))});
const { readFileSync } = require('node:fs');
require.extensions['.ts'] = function (module, filename) {
  const { code } = transformSync(readFileSync(filename, 'utf8'), {
    filename, swcrc: false, sourceMaps: 'inline', module: { type: 'commonjs' },
    jsc: { target: 'es2022', baseUrl: ${JSON.stringify(ROOT)}, paths: ${JSON.stringify({ ...swcrc.jsc.paths, ...paths })},
      parser: { syntax: 'typescript', decorators: true, dynamicImport: true },
      transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false }, keepClassNames: true },
  });
  module._compile(code, filename);
};
`,
  );
  return file;
}
