import { isPositiveIntParam } from './strict-input';
import { isCredentialIdParam } from './validated-params';

/** What names a path that matched no route, where a route pattern is recorded (metric label, audit resource). */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * The route's pattern as Fastify matched it (`/v1/credentials/:id/value`), else `unmatched`: nothing a
 * client chose (an id, or a token pasted into the path) is carried, only which route it asked for.
 */
export function routePattern(req: { routeOptions?: { url?: string } }): string {
  return req.routeOptions?.url ?? UNMATCHED_ROUTE;
}

/**
 * Path parameters a log line shows, each with the check its routes validate it by: a value that passes is a server's
 * id or a version number, never free text. Any other parameter — and one whose value fails the check (a token pasted
 * as `:id`) — stays its `:name`. Key names, key versions, integration and connection ids pass their checks as almost any
 * word or token would, so they are never shown (the request's audit rows, by its request id, name them).
 */
const SHOWN_PARAMS: Readonly<Record<string, (value: unknown) => boolean>> = Object.freeze({ id: isCredentialIdParam, version: isPositiveIntParam });

interface ShownParam {
  name: string;
  placeholder: string;
  check: (value: unknown) => boolean;
}
/** A route pattern cut into its fixed text and the parameters it may show, once per pattern. */
interface PathTemplate {
  parts: ReadonlyArray<string | ShownParam>;
  params: readonly ShownParam[];
  /** The length of its fixed text. */
  fixedLength: number;
  /** Whether every parameter of the pattern is one it may show. */
  allShown: boolean;
}
const templates = new Map<string, PathTemplate>();

function templateOf(pattern: string): PathTemplate {
  let template = templates.get(pattern);
  if (template === undefined) {
    const parts: Array<string | ShownParam> = [];
    const params: ShownParam[] = [];
    let text = '';
    let allShown = true;
    for (const [i, segment] of pattern.split('/').entries()) {
      if (i > 0) text += '/';
      const name = /^:(\w+)$/.exec(segment)?.[1];
      const check = name !== undefined && Object.hasOwn(SHOWN_PARAMS, name) ? SHOWN_PARAMS[name] : undefined;
      if (check === undefined) {
        if (segment.startsWith(':') || segment.includes('*')) allShown = false;
        text += segment;
        continue;
      }
      const param = { name: name!, placeholder: segment, check };
      parts.push(text, param);
      params.push(param);
      text = '';
    }
    parts.push(text);
    const fixedLength = parts.reduce((n, part) => n + (typeof part === 'string' ? part.length : 0), 0);
    templates.set(pattern, (template = { parts, params, fixedLength, allShown }));
  }
  return template;
}

/**
 * The path as a log line may carry it: the route pattern with the parameters that passed their route's check filled in
 * (`/v1/credentials/4f1c…/versions/:version/value` for a version that was not a number), else `unmatched`. Caller text
 * that failed validation — or that no route took — never appears.
 */
export function loggablePath(req: { url: string; routeOptions?: { url?: string }; params?: unknown }): string {
  const pattern = req.routeOptions?.url;
  if (pattern === undefined) return UNMATCHED_ROUTE;
  const template = templateOf(pattern);
  if (template.parts.length === 1) return pattern;
  const params = (req.params ?? {}) as Record<string, unknown>;
  let length = template.fixedLength;
  let verbatim = template.allShown;
  for (const param of template.params) {
    const value = params[param.name];
    if (param.check(value)) length += (value as string).length;
    else verbatim = false;
  }
  // The hot case (a value read): the path as sent is exactly the pattern filled in, so it is answered without building
  // a string. The router matched the path, so it holds the pattern's fixed text and each value — percent-encoded (longer)
  // or as is — plus anything it ignores (longer): the same length means the same text.
  const q = req.url.indexOf('?');
  const pathLength = q < 0 ? req.url.length : q;
  if (verbatim && pathLength === length) return req.url.slice(0, pathLength);
  let path = '';
  for (const part of template.parts) {
    if (typeof part === 'string') path += part;
    else {
      const value = params[part.name];
      path += part.check(value) ? (value as string) : part.placeholder;
    }
  }
  return path;
}
