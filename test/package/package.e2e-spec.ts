import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { createTestDatabase, TestOAuthServer, type TestDatabase } from '@app/testing';
import { lockfileFor } from './scratch-lockfile';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '../..');
const PKG = '@credential-vault/nest';
const MODULES = ['common', 'key-vault', 'credentials', 'audit', 'oauth-refresh', 'rotation', 'migration', 'keys'];
/** The outside app's sources (a dot-directory, so the monorepo's tsc and jest never compile it: it imports the package by name). */
const APP_TEMPLATE = join(__dirname, '.embedding-app');
// What the outside app installs: the tarball, the peers it uses, @nestjs/config, and its own jest + TypeScript.
const APP_DEPENDENCIES = ['@nestjs/common', '@nestjs/core', '@nestjs/config', '@nestjs/typeorm', '@nestjs/event-emitter', '@nestjs/schedule', '@nestjs/terminus', 'typeorm', 'pg', 'rxjs', 'reflect-metadata', 'prom-client', '@opentelemetry/api'];
const APP_DEV_DEPENDENCIES = ['jest', '@swc/jest', '@swc/core', '@nestjs/testing', '@types/jest', '@types/node', 'typescript'];

/** The environment for a nested npm: without the npm_* variables of an `npm test` that started jest. */
function npmEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))), ...extra };
}

/**
 * The libs as an installable package: `npm run build:package`'s script builds it, `npm pack` packs
 * it, and the tarball is what these checks read and load (outside the monorepo, no path aliases).
 */
describe('npm package (build:package → npm pack)', () => {
  let work: string;
  let tarball: string;
  let unpacked: string;
  let pkg: {
    name: string;
    version: string;
    exports: Record<string, { types: string; default: string } | string>;
    dependencies: Record<string, string>;
    peerDependencies: Record<string, string>;
    peerDependenciesMeta: Record<string, { optional?: boolean }>;
  };
  let files: string[];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'cv-package-'));
    // The same script `npm run build:package` runs, into a private dir (parallel runs never share one).
    await run(process.execPath, [join(ROOT, 'scripts/build-package.mjs'), '--out', join(work, 'build')], { cwd: ROOT });
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: join(work, 'build') });
    const packed = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = join(work, packed[0].filename);
    files = packed[0].files.map((f) => f.path);
    unpacked = join(work, 'unpacked', 'node_modules', ...PKG.split('/'));
    mkdirSync(unpacked, { recursive: true });
    await run('tar', ['-xzf', tarball, '-C', unpacked, '--strip-components=1']);
    pkg = JSON.parse(readFileSync(join(unpacked, 'package.json'), 'utf8'));
  }, 240_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('has one export per module (compiled JS + declarations) and the local vault as its own entry', () => {
    expect(pkg.name).toBe(PKG);
    const entries = Object.keys(pkg.exports).filter((k) => k !== './package.json').sort();
    expect(entries).toEqual([...MODULES, 'keyvault-emulator'].map((m) => `./${m}`).sort());
    for (const entry of entries) {
      const { types, default: js } = pkg.exports[entry] as { types: string; default: string };
      expect(files).toContain(js.slice(2));
      expect(files).toContain(types.slice(2));
    }
    // Every compiled module has its declaration next to it.
    const js = files.filter((f) => f.endsWith('.js'));
    expect(js.length).toBeGreaterThan(100);
    expect(js.filter((f) => !files.includes(f.replace(/\.js$/, '.d.ts')))).toEqual([]);
  });

  it("ships each module's README beside its code (the package README sends readers there), naming the package's entries", () => {
    for (const [m, dir] of [...MODULES.map((m) => [m, `libs/${m}`]), ['keyvault-emulator', 'apps/keyvault-emulator']]) {
      expect({ m, shipped: files.includes(`${dir}/README.md`) }).toEqual({ m, shipped: true });
      // The READMEs speak the monorepo's `@app/<module>` aliases: the shipped copy says what they are here.
      expect(readFileSync(join(unpacked, dir, 'README.md'), 'utf8')).toContain(`\`@app/<module>\` below is \`${PKG}/<module>\``);
    }
  });

  it('contains no test code, no TypeScript sources and no path aliases', () => {
    expect(files.filter((f) => /\.(spec|int-spec|e2e-spec|testing|child)\.(js|d\.ts)$|(^|\/)(testing|test)\//.test(f))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    const aliased = files.filter((f) => /\.(js|d\.ts)$/.test(f) && /(require\(|from |import\()["']@app\//.test(readFileSync(join(unpacked, f), 'utf8')));
    expect(aliased).toEqual([]);
  });

  it('declares Nest, TypeORM, rxjs and the drivers as peers and bundles none of them', () => {
    for (const peer of ['@nestjs/common', '@nestjs/core', '@nestjs/typeorm', 'typeorm', 'rxjs', 'reflect-metadata', 'pg']) {
      expect(pkg.peerDependencies[peer]).toBeDefined();
      expect(pkg.dependencies[peer]).toBeUndefined();
    }
    expect(Object.keys(pkg.dependencies)).toEqual(expect.arrayContaining(['@azure/identity', '@azure/keyvault-secrets', 'zod']));
    expect(files.filter((f) => f.includes('node_modules/'))).toEqual([]);
    // Test-only packages of the monorepo are never required at run time.
    const rootPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(Object.keys(pkg.dependencies).filter((d) => rootPkg.devDependencies[d])).toEqual([]);
  });

  it('loads no emulator code from a production entry (the require graph of each module)', () => {
    for (const m of MODULES) {
      const reached = requireGraph(unpacked, (pkg.exports[`./${m}`] as { default: string }).default.slice(2));
      expect({ module: m, emulator: reached.filter((f) => f.startsWith('apps/')) }).toEqual({ module: m, emulator: [] });
    }
    expect(requireGraph(unpacked, 'apps/keyvault-emulator/src/index.js').length).toBeGreaterThan(5);
  });

  it('loads every entry from the unpacked tarball outside the monorepo (peers from the host)', async () => {
    const script = [...MODULES, 'keyvault-emulator']
      .map((m) => `out[${JSON.stringify(m)}] = Object.keys(require(${JSON.stringify(`${PKG}/${m}`)})).length;`)
      .join('\n');
    // NODE_PATH stands in for the host app's node_modules (the peers); the package itself comes from the tarball.
    const { stdout } = await run(process.execPath, ['-e', `const out = {};\n${script}\nconsole.log(JSON.stringify({ out, credentials: require.resolve('${PKG}/credentials') }));`], {
      cwd: join(work, 'unpacked'),
      env: { ...process.env, NODE_PATH: join(ROOT, 'node_modules') },
    });
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as { out: Record<string, number>; credentials: string };
    expect(result.credentials).toBe(join(unpacked, 'libs/credentials/src/index.js'));
    for (const m of [...MODULES, 'keyvault-emulator']) expect(result.out[m]).toBeGreaterThan(0);
  });

  it('gives an ESM import of every entry the named exports require sees (Node reads them with cjs-module-lexer)', async () => {
    // The package is CommonJS: an ESM host's `import { CredentialsModule } from …` links only the names Node's
    // lexer finds in the source, else only `default` (SyntaxError at startup). Every entry of the exports map.
    const script = `
      import { createRequire } from 'node:module';
      const require = createRequire(${JSON.stringify(join(work, 'unpacked', 'index.js'))});
      const names = (m) => Object.keys(m).filter((k) => k !== 'default' && k !== '__esModule').sort();
      const out = {};
      for (const entry of ${JSON.stringify(Object.keys(pkg.exports).filter((e) => e !== './package.json'))}) {
        const spec = ${JSON.stringify(PKG)} + entry.slice(1);
        const esm = await import(spec);
        const cjs = require(spec);
        out[entry] = { required: names(cjs).length, imported: names(esm).length, missing: names(cjs).filter((n) => !(n in esm)), different: names(cjs).filter((n) => n in esm && esm[n] !== cjs[n]) };
      }
      console.log(JSON.stringify(out));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: join(work, 'unpacked'),
      env: { ...process.env, NODE_PATH: join(ROOT, 'node_modules') },
    });
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, { required: number; imported: number; missing: string[]; different: string[] }>;
    expect(Object.keys(out).sort()).toEqual([...MODULES, 'keyvault-emulator'].map((m) => `./${m}`).sort());
    for (const [entry, r] of Object.entries(out)) {
      expect(r.required).toBeGreaterThan(0);
      expect({ entry, imported: r.imported, missing: r.missing, different: r.different }).toEqual({ entry, imported: r.required, missing: [], different: [] });
    }
  });

  it('declares @opentelemetry/api as a peer of any compatible 1.x (the monorepo pins ~1.9 for its own OpenTelemetry SDK)', () => {
    expect(pkg.peerDependencies['@opentelemetry/api']).toMatch(/^\^1\.\d+\.\d+$/);
    expect(pkg.dependencies['@opentelemetry/api']).toBeUndefined();
  });

  /**
   * A Nest app outside the monorepo (its own package.json, lockfile, tsconfig and jest config) installs
   * the tarball and its peers offline from the npm cache, type-checks against the package's
   * declarations, and runs its own jest test: migrations, a credential through the local vault, and an
   * OAuth refresh at a real OAuth server started here.
   */
  describe('an outside Nest app installing the tarball', () => {
    let app: string;
    let db: TestDatabase;
    let idp: TestOAuthServer;

    beforeAll(async () => {
      app = mkdtempSync(join(tmpdir(), 'cv-embedding-app-'));
      cpSync(APP_TEMPLATE, app, { recursive: true });
      const rootPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
      const pick = (from: Record<string, string>, names: string[]) => Object.fromEntries(names.map((n) => [n, from[n]]));
      const manifest = {
        name: 'embedding-app',
        version: '1.0.0',
        private: true,
        scripts: { test: 'tsc -p tsconfig.json && jest --runInBand' },
        dependencies: { [PKG]: `file:${relative(app, tarball)}`, ...pick(rootPkg.dependencies, APP_DEPENDENCIES) },
        devDependencies: pick(rootPkg.devDependencies, APP_DEV_DEPENDENCIES),
      };
      writeFileSync(join(app, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
      // The monorepo's exact versions (and integrity), so the offline install needs no registry metadata.
      const lock = lockfileFor(join(ROOT, 'package-lock.json'), manifest, {
        [`node_modules/${PKG}`]: {
          version: pkg.version,
          resolved: `file:${relative(app, tarball)}`,
          dependencies: pkg.dependencies,
          peerDependencies: pkg.peerDependencies,
          peerDependenciesMeta: pkg.peerDependenciesMeta,
        },
      });
      writeFileSync(join(app, 'package-lock.json'), `${JSON.stringify(lock, null, 2)}\n`);
      await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: app, env: npmEnv(), maxBuffer: 64 * 1024 * 1024 });
      db = await createTestDatabase('postgres');
      idp = await TestOAuthServer.start();
    }, 300_000);

    afterAll(async () => {
      await idp?.close();
      await db?.drop();
      if (app) rmSync(app, { recursive: true, force: true });
    });

    it('is outside the monorepo and got the package from the tarball, its peers at the top level', () => {
      expect(relative(ROOT, app).startsWith('..')).toBe(true);
      const installed = JSON.parse(readFileSync(join(app, 'node_modules', PKG, 'package.json'), 'utf8'));
      expect(installed.version).toBe(pkg.version);
      // One copy of Nest and TypeORM: the app's (a nested copy under the package would split DI and metadata).
      for (const peer of ['@nestjs/common', '@nestjs/core', 'typeorm']) {
        expect(existsSync(join(app, 'node_modules', peer, 'package.json'))).toBe(true);
        expect(existsSync(join(app, 'node_modules', PKG, 'node_modules', peer))).toBe(false);
      }
      // Without the optional peer ioredis: the app's tsc (skipLibCheck: false) checks that no published
      // declaration imports it (an embedder without Redis got TS2307).
      expect(existsSync(join(app, 'node_modules', 'ioredis'))).toBe(false);
    });

    it("passes its own tests: migrations, a credential through the local vault (and its controller, a caller who left dropped), its audit anchored there, an OAuth refresh; Rotation, Migration and Keys", async () => {
      const tokens = await idp.authorize('openid');
      idp.resetCounters();
      const schema = (db.options as { schema: string }).schema;
      const result = await run('npm', ['test'], {
        cwd: app,
        maxBuffer: 64 * 1024 * 1024,
        env: npmEnv({
          DATABASE_URL: (db.options as { url: string }).url,
          DATABASE_SCHEMA: schema,
          OAUTH_ISSUER: idp.issuer,
          OAUTH_CLIENT_ID: idp.clientId,
          OAUTH_CLIENT_SECRET: idp.clientSecret,
          OAUTH_TOKENS: JSON.stringify(tokens),
        }),
      }).catch((e: { stdout?: string; stderr?: string; message: string }) => {
        throw new Error(`the app's own test failed:\n${e.stdout ?? ''}\n${e.stderr ?? e.message}`);
      });
      const output = `${result.stdout}\n${result.stderr}`;
      expect(output).toMatch(/Tests:\s+9 passed, 9 total/);
      // The refresh reached this OAuth server: exactly one refresh grant.
      expect(idp.refreshCalls).toBe(1);
    }, 240_000); // its tsc + jest, on a loaded CI machine

    it('runs as an ESM host ("type": "module", module node20) with named imports from every entry', async () => {
      // esm/ of the app: its own package.json ("type": "module") and tsconfig; tsc type-checks it, Node runs it.
      const esm = join(app, 'esm');
      await run(process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), '-p', join(esm, 'tsconfig.json')], { cwd: app }).catch(
        (e: { stdout?: string; stderr?: string; message: string }) => {
          throw new Error(`the ESM host does not type-check:\n${e.stdout ?? ''}\n${e.stderr ?? e.message}`);
        },
      );
      const { stdout } = await run(process.execPath, [join(esm, 'dist/main.js')], { cwd: app, env: npmEnv() }).catch(
        (e: { stdout?: string; stderr?: string; message: string }) => {
          throw new Error(`the ESM host failed at startup:\n${e.stdout ?? ''}\n${e.stderr ?? e.message}`);
        },
      );
      const result = JSON.parse(stdout.trim().split('\n').pop()!) as {
        named: Record<string, string>;
        entries: Record<string, { required: number; imported: number; missing: string[]; different: string[] }>;
      };
      const entries = Object.keys(pkg.exports).filter((e) => e !== './package.json').sort();
      // One named import per entry (a new entry needs its own line in esm/main.ts), each a class.
      expect(result.named).toEqual(Object.fromEntries(entries.map((e) => [e, 'function'])));
      expect(Object.keys(result.entries).sort()).toEqual(entries);
      for (const [entry, r] of Object.entries(result.entries)) {
        expect(r.required).toBeGreaterThan(0);
        expect({ entry, imported: r.imported, missing: r.missing, different: r.different }).toEqual({ entry, imported: r.required, missing: [], different: [] });
      }
    }, 120_000);
  });
});

describe('README: Embedding the modules in your Nest API', () => {
  it("shows the outside app's module, error filter and controller exactly as the package test builds and runs them", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const start = readme.indexOf('## Embedding the modules in your Nest API');
    expect(start).toBeGreaterThanOrEqual(0);
    const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
    const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
    expect(blocks).toContain(readFileSync(join(APP_TEMPLATE, 'src/app.module.ts'), 'utf8'));
    expect(blocks).toContain(readFileSync(join(APP_TEMPLATE, 'src/error.filter.ts'), 'utf8'));
    expect(blocks).toContain(readFileSync(join(APP_TEMPLATE, 'src/connections.controller.ts'), 'utf8'));
  });

  it('installs what the outside app installs: its `npm install` line names every package the app depends on', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Embedding the modules in your Nest API'));
    const install = /npm install \.\.\/credential-vault-nest-(?:[^\n]*\\\n)*[^\n]*/.exec(section)?.[0] ?? '';
    const named = install.split(/[\s\\]+/).slice(3);
    // The app imports Nest, rxjs and reflect-metadata itself: as npm's auto-installed peers they would be missing
    // from its package.json (and from node_modules under pnpm or yarn's strict layouts).
    expect(APP_DEPENDENCIES.filter((d) => !named.includes(d))).toEqual([]);
  });
});

/** Package-relative paths of every file a module reaches through relative requires and self-references. */
function requireGraph(pkgDir: string, entry: string): string[] {
  const seen = new Set<string>();
  const visit = (rel: string) => {
    if (seen.has(rel)) return;
    seen.add(rel);
    const code = readFileSync(join(pkgDir, rel), 'utf8');
    for (const [, , spec] of code.matchAll(/require\((["'])([^"']+)\1\)/g)) {
      if (spec.startsWith('.')) {
        const base = join(dirname(rel), spec);
        const hit = [`${base}.js`, join(base, 'index.js'), base].find((c) => existsSync(join(pkgDir, c)) && c.endsWith('.js'));
        if (!hit) throw new Error(`${rel} requires ${spec}, which is not in the package`);
        visit(hit);
      } else if (spec.startsWith(`${PKG}/`)) {
        visit(`${selfEntry(pkgDir, spec)}`);
      }
    }
  };
  visit(entry);
  return [...seen];
}

function selfEntry(pkgDir: string, spec: string): string {
  const exportsMap = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).exports as Record<string, { default: string }>;
  const target = exportsMap[`.${spec.slice(PKG.length)}`];
  if (!target) throw new Error(`${spec} is not exported`);
  return target.default.slice(2);
}
