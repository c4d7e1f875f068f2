import type { z } from 'zod';

/** One bad option: where it is (`readBuffer.batchSize`, `(options)` for the root) and what is wrong. Never its value. */
export interface OptionsProblem {
  path: string;
  message: string;
}

/**
 * Validates module options against a zod schema and applies its defaults, once, at bootstrap.
 * Every problem is collected into ONE error built by `makeError` (each lib keeps its own typed
 * configuration error and code). Problems carry a path and a message, never the offending value:
 * options hold secrets (client secrets, tokens), and zod's own messages name only what was expected.
 * `alwaysGlobal`: the name of a module that takes no `isGlobal` (PersistenceModule), told instead of where it goes.
 */
export function resolveOptions<S extends z.ZodType>(
  schema: S,
  input: unknown,
  makeError: (problems: OptionsProblem[]) => Error,
  { alwaysGlobal }: { alwaysGlobal?: string } = {},
): z.output<S> {
  const parsed = schema.safeParse(input ?? {}, { reportInput: false });
  if (parsed.success) return parsed.data;
  throw makeError(parsed.error.issues.map((i) => ({ path: optionPath(i.path), message: withKeyHint(schema, i, alwaysGlobal) })));
}

/**
 * An unknown key one slip away from a known one at its place (`cronTme`), or a shorter or longer spelling of
 * one (`cron` where the option is `cronTime`: the libs' jobs spell it both ways), is told which one was meant.
 */
function withKeyHint(schema: z.ZodType, issue: z.core.$ZodIssue, alwaysGlobal: string | undefined): string {
  if (issue.code !== 'unrecognized_keys') return issue.message;
  const known = keysAt(schema, issue.path);
  if (!known) return issue.message;
  const hints = issue.keys.flatMap((key) => {
    const near = known.find((k) => oneSlipApart(k, key) || k.toLowerCase() === key.toLowerCase() || (Math.min(k.length, key.length) >= 4 && (k.startsWith(key) || key.startsWith(k))));
    return near ? [issue.keys.length > 1 ? `"${near}" for "${key.slice(0, 64)}"` : `"${near}"`] : [];
  });
  const message = hints.length ? `${issue.message}; did you mean ${hints.join(', ')}?` : issue.message;
  // forRoot never passes isGlobal on (an extra of the module builder): at the root it came from a forRootAsync factory.
  if (issue.path.length > 0 || !issue.keys.includes('isGlobal')) return message;
  if (alwaysGlobal) return `${message}; ${alwaysGlobal} takes no isGlobal: it is always global (remove it)`;
  return `${message}; isGlobal is no option the factory returns: pass it beside useFactory, forRootAsync({ isGlobal: true, useFactory })`;
}

/** The keys of the object schema at `path` (through optional, default, nullable and pipe wrappers), if it is one. */
function keysAt(schema: z.ZodType, path: ReadonlyArray<PropertyKey>): string[] | undefined {
  let def = unwrap(schema);
  for (const step of path) {
    if (def?.type === 'object') def = unwrap((def.shape as Record<PropertyKey, z.ZodType>)[step]);
    else if (def?.type === 'record') def = unwrap(def.valueType as z.ZodType);
    else if (def?.type === 'array') def = unwrap(def.element as z.ZodType);
    else return undefined;
  }
  return def?.type === 'object' ? Object.keys(def.shape as object) : undefined;
}

type SchemaDef = { type: string; [part: string]: unknown };

function unwrap(schema: z.ZodType | undefined): SchemaDef | undefined {
  let def = (schema as { _zod?: { def: SchemaDef } } | undefined)?._zod?.def;
  for (let i = 0; def && i < 10; i++) {
    const inner = def.innerType ?? (def.type === 'pipe' ? def.in : undefined);
    if (!inner) break;
    def = (inner as { _zod: { def: SchemaDef } })._zod.def;
  }
  return def;
}

/** Whether `b` is `a` with one letter inserted, deleted or replaced, or two neighbours swapped. */
export function oneSlipApart(a: string, b: string): boolean {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  if (i === a.length && i === b.length) return false;
  if (a.slice(i + 1) === b.slice(i + 1)) return true; // replaced
  if (a.slice(i) === b.slice(i + 1) || a.slice(i + 1) === b.slice(i)) return true; // inserted or deleted
  return a[i] === b[i + 1] && a[i + 1] === b[i] && a.slice(i + 2) === b.slice(i + 2); // swapped
}

/** `a.b.0.c`, or `(options)` for a problem of the whole object. */
export function optionPath(path: ReadonlyArray<PropertyKey>): string {
  return path.length ? path.map(String).join('.') : '(options)';
}

/** `path: message` per problem, the form every configuration error of the libs lists. */
export function describeProblems(problems: readonly OptionsProblem[]): string[] {
  return problems.map((p) => `${p.path}: ${p.message}`);
}
