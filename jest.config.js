// Jest runs in CommonJS mode: @swc/jest compiles our TypeScript *and* the ESM-only Nest 12 packages
// (see transformIgnorePatterns); jest's own ESM mode breaks once a CJS lib loads @nestjs/common.
const swc = {
  swcrc: false,
  jsc: {
    target: 'es2022',
    parser: { syntax: 'typescript', decorators: true, dynamicImport: true },
    transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
    keepClassNames: true,
  },
  module: { type: 'commonjs' },
  sourceMaps: 'inline',
};

const libs = ['common', 'key-vault', 'credentials', 'audit', 'oauth-refresh', 'rotation', 'migration', 'keys'];
const moduleNameMapper = Object.fromEntries([
  ...libs.map((l) => [`^@app/${l}$`, `<rootDir>/libs/${l}/src/index.ts`]),
  ['^@app/keyvault-emulator$', '<rootDir>/apps/keyvault-emulator/src/index.ts'],
  ['^@app/api-host$', '<rootDir>/apps/api/src/public.ts'],
  ['^@app/testing$', '<rootDir>/test/support/index.ts'],
]);

const esmPackages = [
  '@nestjs', 'file-type', 'token-types', 'strtok3', '@tokenizer', 'uint8array-extras', '@borewit', 'load-esm',
  'oidc-provider', 'oauth4webapi', 'jose', '@opentelemetry', 'content-disposition', 'quick-lru', 'nanoid', 'eta', 'got', '@koa', 'koa',
];

const common = {
  rootDir: __dirname,
  testEnvironment: 'node',
  transform: { '^.+\\.(t|j|mj)sx?$': ['@swc/jest', swc] },
  transformIgnorePatterns: [`/node_modules/(?!(${esmPackages.join('|')})/)`],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
  moduleNameMapper,
};

module.exports = {
  // A worker whose heap is past this after a test file is replaced by a fresh one (jest keeps each file's module
  // registry apart, but what files leave behind — global caches, native handles — builds up to ~800 MB): a full GC
  // of such a heap runs every few hundred ms and slowed every later file in it (unit project: ~20% faster with it).
  workerIdleMemoryLimit: '400MB',
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/{apps,libs,bench}/**/*.spec.ts'],
    },
    {
      ...common,
      displayName: 'integration',
      // Integration specs talk to real services: the local vault over HTTPS, SQLite, PostgreSQL, Redis.
      testMatch: ['<rootDir>/{apps,libs}/**/*.int-spec.ts', '<rootDir>/test/**/*.e2e-spec.ts'],
      // jest ignores a project's `testTimeout` for hooks (a host booting in beforeAll got 5 s); set it per file instead.
      setupFilesAfterEnv: ['<rootDir>/test/support/integration-timeout.ts'],
    },
  ],
};
