import { readdirSync } from 'node:fs';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// No deep imports across libs: only the public index through the @app/<lib> alias.
const libImportPatterns = [
  { group: ['@app/*/*'], message: 'Import a lib only through its public index (@app/<lib>).' },
  { group: ['**/libs/*/src/**', '../../libs/**'], message: 'Use the @app/<lib> alias, not a path into another lib.' },
];

// Nor across apps: an app uses another only through its public entry (@app/api-host, @app/keyvault-emulator).
const apps = readdirSync(new URL('./apps', import.meta.url), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name);
const crossAppPatterns = (app) => [
  ...libImportPatterns,
  {
    regex: `^(\\.\\./)+(apps/)?(${apps.filter((a) => a !== app).join('|')})/src(/|$)`,
    message: "Import another app only through its public entry alias (@app/api-host, @app/keyvault-emulator), not a relative path into it.",
  },
];
// The host's routes take input through its own @Body/@Query/@Param (the ValidationPipe is their pipe, not a global one).
const hostInputPaths = [
  {
    name: '@nestjs/common',
    importNames: ['Body', 'Query', 'Param'],
    message: "Use @Body/@Query/@Param from apps/api/src/http/validated-params: Nest's own are not validated in the host.",
  },
];
const crossAppRules = apps.map((app) => ({
  files: [`apps/${app}/**/*.ts`],
  rules: {
    'no-restricted-imports': ['error', { patterns: crossAppPatterns(app), ...(app === 'api' ? { paths: hostInputPaths } : {}) }],
  },
}));

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'data/**', '*.js', '*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { sourceType: 'module' } },
    rules: {
      'no-console': ['error', { allow: ['warn', 'error'] }],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', { patterns: libImportPatterns }],
    },
  },
  ...crossAppRules,
  {
    files: ['apps/api/src/http/validated-params.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: crossAppPatterns('api') }] },
  },
  {
    // The host depends on the libs, never the other way round.
    files: ['libs/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [...libImportPatterns, { group: ['@app/api-host'], message: 'Libs never import the host.' }] },
      ],
    },
  },
  {
    files: ['bench/**/*.ts', 'apps/keyvault-emulator/src/main.ts', 'apps/cli/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    // Maintenance scripts run by hand with plain node.
    files: ['scripts/**/*.mjs'],
    languageOptions: { globals: { URL: 'readonly', console: 'readonly', process: 'readonly' } },
    rules: { 'no-console': 'off' },
  },
);
