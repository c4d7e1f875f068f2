import { readFileSync } from 'node:fs';

interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  [key: string]: unknown;
}

/**
 * A package-lock.json for an app outside the monorepo, cut from the monorepo's own lockfile: the
 * entries the app's dependencies reach (same versions, same integrity). With it `npm install --offline`
 * needs no registry metadata, only the tarballs `npm ci` left in the npm cache.
 * `extra` are entries to add as they are (the packed tarball's own).
 */
export function lockfileFor(
  rootLockPath: string,
  app: { name: string; version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> },
  extra: Record<string, LockEntry & { dependencies?: Record<string, string> }> = {},
): object {
  const lock = JSON.parse(readFileSync(rootLockPath, 'utf8')) as { packages: Record<string, LockEntry> };
  const all: Record<string, LockEntry> = { ...lock.packages, ...extra };
  const picked: Record<string, LockEntry> = {};
  // Node's lookup: <from>/node_modules/<name>, then each enclosing node_modules, then the top level.
  const resolveFrom = (from: string, name: string): string | undefined => {
    let dir = from;
    for (;;) {
      const candidate = `${dir ? `${dir}/` : ''}node_modules/${name}`;
      if (all[candidate]) return candidate;
      if (!dir) return undefined;
      const idx = dir.lastIndexOf('/node_modules/');
      dir = idx < 0 ? '' : dir.slice(0, idx);
    }
  };
  const visit = (path: string) => {
    if (picked[path]) return;
    const entry = all[path];
    picked[path] = entry;
    const optionalPeers = entry.peerDependenciesMeta ?? {};
    const names = [
      ...Object.keys(entry.dependencies ?? {}),
      ...Object.keys(entry.optionalDependencies ?? {}),
      ...Object.keys(entry.peerDependencies ?? {}).filter((p) => !optionalPeers[p]?.optional),
    ];
    for (const name of names) {
      const found = resolveFrom(path, name);
      if (found) visit(found);
      else if (!entry.optionalDependencies?.[name]) throw new Error(`${path} needs ${name}, which the monorepo's lockfile does not have`);
    }
  };
  for (const name of [...Object.keys(app.dependencies), ...Object.keys(app.devDependencies)]) {
    const found = resolveFrom('', name);
    if (!found) throw new Error(`the monorepo's lockfile has no ${name}`);
    visit(found);
  }
  return {
    name: app.name,
    version: app.version,
    lockfileVersion: 3,
    requires: true,
    packages: { '': { name: app.name, version: app.version, dependencies: app.dependencies, devDependencies: app.devDependencies }, ...picked },
  };
}
