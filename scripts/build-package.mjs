#!/usr/bin/env node
// Builds the libs into one installable npm package (dist/package/, ignored with dist/): CommonJS from swc (annotated
// so ESM importers see its named exports), declarations from tsc, an `exports` map with one entry per lib plus the
// local vault (for tests only), and the package.json's dependencies computed from what the compiled code requires.
// Usage: node scripts/build-package.mjs [--out <dir>]
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const swc = require('@swc/core');

export const PACKAGE_NAME = '@credential-vault/nest';
const outArg = process.argv.indexOf('--out');
const out = resolve(root, outArg > 0 ? process.argv[outArg + 1] : 'dist/package');

// One subpath export per module; the local vault is its own entry so production entries never load it.
const MODULES = {
  common: 'libs/common/src',
  'key-vault': 'libs/key-vault/src',
  credentials: 'libs/credentials/src',
  audit: 'libs/audit/src',
  'oauth-refresh': 'libs/oauth-refresh/src',
  rotation: 'libs/rotation/src',
  migration: 'libs/migration/src',
  keys: 'libs/keys/src',
  'keyvault-emulator': 'apps/keyvault-emulator/src',
};
const ALIAS = { ...Object.fromEntries(Object.keys(MODULES).map((m) => [`@app/${m}`, `${PACKAGE_NAME}/${m}`])) };

// Shared framework packages: the host's single copy must be used (DI tokens, metadata, registries).
const PEERS = ['@nestjs/common', '@nestjs/core', '@nestjs/typeorm', '@nestjs/event-emitter', '@nestjs/schedule', '@nestjs/terminus', 'typeorm', 'rxjs', 'reflect-metadata', 'prom-client', '@opentelemetry/api'];
// Database / cache drivers: the host picks the ones it uses.
const OPTIONAL_PEERS = ['pg', 'better-sqlite3', 'ioredis'];

/** Test code stays out of the package: specs, test fixtures, `testing/` helpers, crash children. */
function isTestCode(rel) {
  return /\.(spec|int-spec|e2e-spec)\.ts$/.test(rel) || /\.testing\.ts$/.test(rel) || /\.child\.ts$/.test(rel) || /(^|\/)(testing|test)\//.test(rel) || rel.endsWith('.d.ts');
}

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

function rewriteAliases(code) {
  return code.replace(/(["'])(@app\/[a-z-]+)\1/g, (m, q, spec) => {
    if (!ALIAS[spec]) throw new Error(`import of ${spec} cannot be packaged (not a module of the package)`);
    return `${q}${ALIAS[spec]}${q}`;
  });
}

const sources = Object.values(MODULES).flatMap((dir) => walk(join(root, dir)).map((f) => relative(root, f))).filter((f) => f.endsWith('.ts') && !isTestCode(f));

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

// 1. JavaScript: the repo's swc settings, without its path aliases (rewritten to the package's own exports).
const swcrc = JSON.parse(readFileSync(join(root, '.swcrc'), 'utf8'));
delete swcrc.$schema;
delete swcrc.exclude;
delete swcrc.jsc.baseUrl;
delete swcrc.jsc.paths;
swcrc.sourceMaps = false;
// ESM hosts (`import { CredentialsModule } from '@credential-vault/nest/credentials'`) see a CommonJS module's
// named exports only where Node's cjs-module-lexer can read them from the source. swc's `_export(exports, {...})`
// getters and `_export_star(require(...), exports)` are opaque to it (ESM would get `default` only): the
// annotation adds a dead `0 && (module.exports = { name, ... })` / `0 && __export(require(...))` it does read.
swcrc.module = { ...swcrc.module, exportInteropAnnotation: true };
const required = new Set();
for (const file of sources) {
  const { code } = swc.transformFileSync(join(root, file), { ...swcrc, swcrc: false, configFile: false, filename: file });
  const js = rewriteAliases(code);
  for (const [, , spec] of js.matchAll(/require\((["'])([^"']+)\1\)/g)) required.add(spec);
  const dest = join(out, file.replace(/\.ts$/, '.js'));
  mkdirSync(dirname(dest), { recursive: true });
  writeFileSync(dest, js);
}

// 2. Type declarations (tsc; the same layout, so relative references between libs stay valid).
const typesDir = join(out, '.types');
// tsconfig.package.json: the packaged sources (its excludes match isTestCode), declarations only.
const tsconfigPath = join(root, 'tsconfig.package.json');
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', tsconfigPath, '--outDir', typesDir], { cwd: root, stdio: 'inherit' });
for (const file of walk(typesDir)) {
  const rel = relative(typesDir, file);
  if (!rel.endsWith('.d.ts') || !sources.includes(rel.replace(/\.d\.ts$/, '.ts'))) continue;
  const dest = join(out, rel);
  mkdirSync(dirname(dest), { recursive: true });
  writeFileSync(dest, rewriteAliases(readFileSync(file, 'utf8')));
}
rmSync(typesDir, { recursive: true, force: true });

// 3. package.json: exports, peers, and the runtime dependencies the compiled code requires.
const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const pkgName = (spec) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
const versionOf = (name) => {
  const declared = rootPkg.dependencies?.[name];
  if (declared) return declared;
  if (rootPkg.devDependencies?.[name]) throw new Error(`production code requires the devDependency ${name}`);
  // A transitive package the code imports directly (e.g. @azure/core-auth): the installed version.
  return `^${JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version}`;
};
const externals = [...new Set([...required].filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !builtinModules.includes(s)).map(pkgName))]
  .filter((n) => n !== PACKAGE_NAME)
  .sort();
const dependencies = {};
const peerDependencies = {};
const peerDependenciesMeta = {};
// A peer accepts the host's compatible versions: the monorepo's `~x.y.z` pin is its own host's constraint (the
// OpenTelemetry SDK 2.x it runs takes `@opentelemetry/api` <1.10.0), the libs use the API alone, so the peer
// range is `^x.y.z` (else a host installing the current 1.x gets an ERESOLVE peer conflict and `npm ls` fails).
const peerRange = (name) => versionOf(name).replace(/^~(?=\d+\.\d+\.\d+$)/, '^');
for (const name of externals) {
  if (PEERS.includes(name)) peerDependencies[name] = peerRange(name);
  else if (OPTIONAL_PEERS.includes(name)) {
    peerDependencies[name] = peerRange(name);
    peerDependenciesMeta[name] = { optional: true };
  } else dependencies[name] = versionOf(name);
}
for (const name of [...PEERS, ...OPTIONAL_PEERS]) {
  if (!peerDependencies[name]) {
    peerDependencies[name] = peerRange(name);
    if (OPTIONAL_PEERS.includes(name)) peerDependenciesMeta[name] = { optional: true };
  }
}
const exportsMap = Object.fromEntries(
  Object.entries(MODULES).map(([name, dir]) => [`./${name}`, { types: `./${dir}/index.d.ts`, default: `./${dir}/index.js` }]),
);
exportsMap['./package.json'] = './package.json';
for (const [name, entry] of Object.entries(exportsMap)) {
  if (typeof entry === 'object' && (!existsSync(join(out, entry.default)) || !existsSync(join(out, entry.types)))) throw new Error(`entry ${name} was not built`);
}
const pkg = {
  name: PACKAGE_NAME,
  version: rootPkg.version,
  description: rootPkg.description,
  license: rootPkg.license,
  type: 'commonjs',
  engines: rootPkg.engines,
  exports: exportsMap,
  files: ['libs', 'apps', 'README.md'],
  dependencies,
  peerDependencies: Object.fromEntries(Object.entries(peerDependencies).sort(([a], [b]) => a.localeCompare(b))),
  peerDependenciesMeta,
};
writeFileSync(join(out, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
cpSync(join(root, 'README.md'), join(out, 'README.md'));
// Each module's README beside its code: the package README sends readers to `libs/<module>/README.md`. They use the
// monorepo's aliases and paths, so the shipped copy says under its title what those are here.
const readmeNote =
  `> Shipped with \`${PACKAGE_NAME}\`: \`@app/<module>\` below is \`${PACKAGE_NAME}/<module>\` (the monorepo's alias of that entry); ` +
  'paths outside `libs/` and `apps/keyvault-emulator/` (the reference host `apps/api`, `test/`, `bench/`, `scripts/`) are in the repository, not in this package.\n';
for (const dir of Object.values(MODULES)) {
  const readme = join(root, dir, '..', 'README.md');
  if (!existsSync(readme)) throw new Error(`${relative(root, readme)} is missing: every module of the package ships its README`);
  const [title, ...rest] = readFileSync(readme, 'utf8').split('\n');
  writeFileSync(join(out, dirname(dir), 'README.md'), [title, '', readmeNote, ...rest].join('\n'));
}
console.log(`built ${PACKAGE_NAME}@${pkg.version} into ${relative(root, out)}: ${sources.length} modules, ${Object.keys(MODULES).length} entries, ${externals.length} external packages`);
