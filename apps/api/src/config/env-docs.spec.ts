import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_VARIABLES, envSchema } from './env-schema';

/**
 * The README's configuration reference is what operators set the host from: a row per variable the
 * schema reads (several may share a row: `A` / `B`, with defaults `a` / `b`), and the default it states.
 */
function documentedDefaults(): Map<string, string> {
  const readme = readFileSync(join(__dirname, '../../../../README.md'), 'utf8');
  const section = readme.split(/^## Configuration reference/m)[1]?.split(/^## /m)[0] ?? '';
  const rows = new Map<string, string>();
  for (const [, names, defaults] of section.matchAll(/^\| (`[A-Z][A-Z0-9_]*`(?: \/ `[A-Z][A-Z0-9_]*`)*) \| ([^|]*) \|/gm)) {
    const cells = defaults.split(' / ').map((d) => d.trim());
    [...names.matchAll(/`([A-Z0-9_]+)`/g)].forEach(([, name], i) => rows.set(name, cells[i] ?? cells[0]));
  }
  return rows;
}

/** What the schema fills in for an unset variable, as the README writes it; undefined when it leaves it unset. */
function schemaDefault(name: string): string | undefined {
  const value: unknown = (envSchema.parse({}) as Record<string, unknown>)[name];
  if (value === undefined || (Array.isArray(value) && value.length === 0)) return undefined;
  return Array.isArray(value) ? value.join(',') : String(value as string | number | boolean);
}

describe("README's configuration reference", () => {
  const documented = documentedDefaults();

  it('has a row for every variable the host reads, and none for a variable it does not read', () => {
    expect(CONFIG_VARIABLES.filter((v) => !documented.has(v))).toEqual([]);
    expect([...documented.keys()].filter((v) => !CONFIG_VARIABLES.includes(v))).toEqual([]);
  });

  it('states the default the schema applies', () => {
    const wrong = CONFIG_VARIABLES.flatMap((name) => {
      const expected = schemaDefault(name);
      // A variable the schema leaves unset may say what that means (`—`, "redis when REDIS_URL is set").
      return expected === undefined || documented.get(name) === `\`${expected}\`` ? [] : [`${name}: README ${documented.get(name)}, schema ${expected}`];
    });
    expect(wrong).toEqual([]);
  });
});
