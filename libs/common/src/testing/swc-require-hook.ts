import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Writes a require hook into `dir` that compiles our TypeScript with @swc/core, as jest does (the repo has no
 * ts-node), for child processes of tests: `node --require <file> child.ts`. Relative imports only.
 */
export function writeRequireHook(dir: string): string {
  const file = join(dir, 'swc-register.js');
  writeFileSync(
    file,
    `const { transformSync } = require(${JSON.stringify(require.resolve('@swc/core'))});
const { readFileSync } = require('node:fs');
require.extensions['.ts'] = function (module, filename) {
  const { code } = transformSync(readFileSync(filename, 'utf8'), {
    filename, swcrc: false, sourceMaps: 'inline', module: { type: 'commonjs' },
    jsc: { target: 'es2022', parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false }, keepClassNames: true },
  });
  module._compile(code, filename);
};
`,
  );
  return file;
}
