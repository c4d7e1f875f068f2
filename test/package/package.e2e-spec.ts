import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '../..');
const PKG = '@credential-vault/nest';
const MODULES = ['common', 'key-vault', 'credentials', 'audit', 'oauth-refresh', 'rotation', 'migration'];

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
    exports: Record<string, { types: string; default: string } | string>;
    dependencies: Record<string, string>;
    peerDependencies: Record<string, string>;
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
