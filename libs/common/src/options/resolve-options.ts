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
 */
export function resolveOptions<S extends z.ZodType>(
  schema: S,
  input: unknown,
  makeError: (problems: OptionsProblem[]) => Error,
): z.output<S> {
  const parsed = schema.safeParse(input ?? {}, { reportInput: false });
  if (parsed.success) return parsed.data;
  throw makeError(parsed.error.issues.map((i) => ({ path: optionPath(i.path), message: i.message })));
}

/** `a.b.0.c`, or `(options)` for a problem of the whole object. */
export function optionPath(path: ReadonlyArray<PropertyKey>): string {
  return path.length ? path.map(String).join('.') : '(options)';
}

/** `path: message` per problem, the form every configuration error of the libs lists. */
export function describeProblems(problems: readonly OptionsProblem[]): string[] {
  return problems.map((p) => `${p.path}: ${p.message}`);
}
