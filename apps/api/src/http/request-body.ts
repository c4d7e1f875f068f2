import { BadRequestException, createParamDecorator, ExecutionContext, SetMetadata, UnsupportedMediaTypeException } from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { HostErrorCode, HostHttpException } from './host-errors';

/** Deeper JSON than this is refused: no body of ours nests past 3 levels, and deep nesting overflows recursive code downstream. */
export const MAX_JSON_DEPTH = 32;

/**
 * A request body as Fastify read it, not yet parsed. Parsing waits until the global guard (AuthGuard)
 * has authenticated and counted the request, so an anonymous client gets 401 whatever it sends and
 * learns nothing about how bodies are parsed.
 */
export class DeferredBody {
  constructor(
    readonly contentType: string | undefined,
    readonly raw: Buffer,
    readonly contentEncoding?: string,
  ) {}
}

/**
 * Replaces every body parser of the Fastify instance with one that only reads the bytes (Fastify's
 * `bodyLimit` still applies). The app must be created with `bodyParser: false` so Nest adds none, and its
 * first onRequest hook must call `dropUnparsableContentType` (bootstrap.ts).
 */
export function deferBodyParsing(fastify: FastifyInstance): void {
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
    done(null, new DeferredBody(req.headers['content-type'], body as Buffer, req.headers['content-encoding']));
  });
}

/**
 * A Content-Type that is no media type (`foo`, empty, a list) gets Fastify's own 415 before any guard: to an
 * anonymous caller, an unknown path and the webhook verify route alike. Dropped in an onRequest hook, the body
 * reaches the parser above as a body of no type: refused after authentication (parseBody) or taken as bytes (verify).
 */
export function dropUnparsableContentType(headers: IncomingHttpHeaders): void {
  const type = headers['content-type'];
  if (type !== undefined && !MEDIA_TYPE.test(type)) delete headers['content-type'];
}

/** What Fastify parses as a media type (`type/subtype`, then anything after `;`): tokens of RFC 9110 §5.6.2. */
const MEDIA_TYPE = /^\s*[\w!#$%&'*+.^`|~-]+\/[\w!#$%&'*+.^`|~-]+\s*(;|$)/;

/** Metadata of a route that takes its body unparsed (the global AuthGuard reads it). */
export const RAW_BODY_ROUTE = 'http:raw-body';

/** A route that takes its body as bytes, unparsed (any content type), e.g. to check a signature over them. Read it with `@RawBody()`. */
export const RawBodyRoute = () => SetMetadata(RAW_BODY_ROUTE, true);

/** The bytes of the request body of a `@RawBodyRoute()` (empty when none was sent). */
export const RawBody = createParamDecorator((_: unknown, ctx: ExecutionContext): Buffer => {
  const body = ctx.switchToHttp().getRequest<{ body?: unknown }>().body;
  return Buffer.isBuffer(body) ? body : Buffer.alloc(0);
});

/**
 * JSON only (`application/json` or `application/*+json`, UTF-8), at most MAX_JSON_DEPTH deep, and a
 * JSON object at the top: every route of the host takes an object. Messages never quote the body.
 */
export function parseBody(body: DeferredBody): Record<string, unknown> | undefined {
  if (body.raw.length === 0) return undefined;
  const [mediaType, ...params] = (body.contentType ?? '').split(';').map((p) => p.trim().toLowerCase());
  if (!/^application\/([a-z0-9.+-]+\+)?json$/.test(mediaType)) {
    throw new UnsupportedMediaTypeException('request bodies must be application/json');
  }
  // No coding is decoded here: a gzip body would be taken as its compressed bytes (RFC 7694: 415).
  const coding = (body.contentEncoding ?? '').trim().toLowerCase();
  if (coding !== '' && coding !== 'identity') throw new UnsupportedMediaTypeException('request bodies must not be compressed (Content-Encoding)');
  const charset = params.find((p) => p.startsWith('charset='))?.slice('charset='.length).replace(/"/g, '');
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new UnsupportedMediaTypeException('request bodies must be UTF-8');
  }
  let text: string;
  try {
    // fatal: bytes that are not UTF-8 must not silently become U+FFFD in a stored value.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(body.raw);
  } catch {
    throw malformedBody('request body is not valid UTF-8');
  }
  const shape = scanJson(text);
  if (shape.depth > MAX_JSON_DEPTH) throw malformedBody(`request body nests deeper than ${MAX_JSON_DEPTH} levels`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, refusePrototypeKeys);
  } catch (e) {
    throw malformedBody(e instanceof ForbiddenKey ? 'request body contains a forbidden key (__proto__, constructor or prototype)' : 'request body is not valid JSON');
  }
  // JSON.parse keeps the last of two members of one name, other parsers (a proxy, a WAF, the client's own
  // checks) the first: `"value"` or `"expectedVersion"` given twice would mean one thing here and another there.
  if (shape.repeatedName) throw malformedBody('request body repeats a member name within one object');
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw malformedBody('request body must be a JSON object');
  return parsed as Record<string, unknown>;
}

class ForbiddenKey extends Error {}

/** A body that is not a JSON object in UTF-8: 400 like a failed validation, but MALFORMED_BODY (nothing of it was read). */
function malformedBody(message: string): HostHttpException {
  return new HostHttpException(HostErrorCode.MALFORMED_BODY, message);
}

/** Refused rather than dropped: Nest's ValidationPipe deletes `constructor` and `prototype` keys at any depth, so a tag so named vanished from a 201. */
function refusePrototypeKeys(key: string, value: unknown): unknown {
  if (key === '__proto__' || key === 'constructor' || key === 'prototype') throw new ForbiddenKey();
  return value;
}

/**
 * The deepest nesting of arrays and objects in `text`, and whether an object names a member twice, in one
 * pass without recursion (brackets and quotes inside strings do not count). Meaningful for valid JSON only.
 */
export function scanJson(text: string): { depth: number; repeatedName: boolean } {
  // Per open container: the member names seen so far of an object, undefined for an array.
  const open: (Set<string> | undefined)[] = [];
  let depth = 0;
  let repeatedName = false;
  // The last token was `{`, `[` or `,`: a string that starts here inside an object is a member name.
  let nameMayFollow = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const start = i + 1;
      let escaped = false;
      for (i = start; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) {
          escaped = true;
          i++; // skip the escaped character
        } else if (d === 0x22) break;
      }
      const names = open[open.length - 1];
      if (nameMayFollow && names !== undefined) {
        const name = escaped ? unescapeJsonString(text.slice(start, i)) : text.slice(start, i);
        if (names.has(name)) repeatedName = true;
        names.add(name);
      }
      nameMayFollow = false;
    } else if (c === 0x7b || c === 0x5b) {
      open.push(c === 0x7b ? new Set() : undefined);
      depth = Math.max(depth, open.length);
      nameMayFollow = true;
    } else if (c === 0x2c) nameMayFollow = true;
    else if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) {
      if (c === 0x7d || c === 0x5d) open.pop();
      nameMayFollow = false;
    }
  }
  return { depth, repeatedName };
}

/** `"v\u0061lue"` and `"value"` name the same member. An escape JSON.parse would refuse is left as written (the body is refused anyway). */
function unescapeJsonString(raw: string): string {
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return raw;
  }
}

/** What a route declares it takes besides its path: query names (or any, for a query DTO) and whether a body. */
export interface DeclaredInput {
  /** `any`: a whole-query DTO (the ValidationPipe refuses what it does not declare); else the names taken one by one. */
  query: 'any' | ReadonlySet<string>;
  body: boolean;
}


/**
 * Read once per route from Nest's parameter metadata (`@Query()`, `@Query('name')`, `@Body()`). A route
 * without a query DTO silently ignored every other parameter — `PATCH …?expectedVersion=1` wrote without its
 * compare-and-set — and one without `@Body()` ignored its body.
 */
export function declaredInput(controller: object, handler: { name: string }): DeclaredInput {
  const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, handler.name) ?? {}) as Record<string, { data?: unknown }>;
  const names = new Set<string>();
  let anyQuery = false;
  let body = false;
  for (const [key, arg] of Object.entries(args)) {
    const kind = Number(key.split(':')[0]);
    if (kind === RouteParamtypes.BODY) body = true;
    if (kind === RouteParamtypes.QUERY) {
      if (typeof arg.data === 'string') names.add(arg.data);
      else anyQuery = true;
    }
  }
  return { query: anyQuery ? 'any' : names, body };
}

/** 400 for a query parameter or a body the route does not declare. Never names the parameter (it comes from the request). */
export function refuseUndeclaredInput(req: { query?: unknown; body?: unknown; headers: IncomingHttpHeaders }, declared: DeclaredInput, rawBody: boolean): void {
  if (declared.query !== 'any' && req.query && typeof req.query === 'object') {
    for (const name of Object.keys(req.query)) {
      if (!declared.query.has(name)) {
        throw new BadRequestException(declared.query.size === 0 ? 'this route takes no query parameters' : `this route takes only the query parameters ${[...declared.query].join(', ')}`);
      }
    }
  }
  if (declared.body || rawBody) return;
  if (req.body instanceof DeferredBody ? !isEmptyBody(req.body.raw) : req.body === undefined && carriesContent(req.headers)) {
    throw new BadRequestException('this route takes no request body');
  }
}

/**
 * Content framed by the headers. Fastify never reads the body of a GET (nor hands it to a parser), so it is seen
 * only here: a filter sent there was ignored and the whole list answered.
 */
export function carriesContent(headers: IncomingHttpHeaders): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** No bytes, or an empty JSON object (what many clients send with every POST): nothing a route could ignore. */
function isEmptyBody(raw: Buffer): boolean {
  if (raw.length === 0) return true;
  return raw.length <= 64 && /^\s*\{\s*\}\s*$/.test(raw.toString('latin1'));
}
