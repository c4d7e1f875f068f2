import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
      // No deep imports across libs: only the public index through the @app/<lib> alias.
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@app/*/*'], message: 'Import a lib only through its public index (@app/<lib>).' },
            { group: ['**/libs/*/src/**', '../../libs/**'], message: 'Use the @app/<lib> alias, not a path into another lib.' },
          ],
        },
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
