/* global module */
// Jest in CommonJS mode; @swc/jest compiles this app's TypeScript and the ESM-only packages it loads
// under jest (Nest 12, oauth4webapi, jose). The package itself is CommonJS.
const esm = ['@nestjs', 'file-type', 'token-types', 'strtok3', '@tokenizer', 'uint8array-extras', '@borewit', 'load-esm', 'oauth4webapi', 'jose', '@opentelemetry'];
module.exports = {
  testEnvironment: 'node',
  testMatch: ['<rootDir>/test/**/*.spec.ts'],
  testTimeout: 60000,
  transform: {
    '^.+\\.(t|j|mj)sx?$': [
      '@swc/jest',
      {
        swcrc: false,
        jsc: {
          target: 'es2022',
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
          keepClassNames: true,
        },
        module: { type: 'commonjs' },
      },
    ],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${esm.join('|')})/)`],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
};
