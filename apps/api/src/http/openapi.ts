import type { OpenAPIObject } from '@nestjs/swagger';
import { AUDIT_RESPONSE_SCHEMAS } from '../audit/audit-response.schemas';
import { CREDENTIAL_RESPONSE_SCHEMAS } from '../credentials/credential-response.schemas';
import { KEY_RESPONSE_SCHEMAS } from '../keys/key-response.schemas';
import { OAUTH_RESPONSE_SCHEMAS } from '../oauth/oauth-response.schemas';
import { ROTATION_RESPONSE_SCHEMAS } from '../rotation/rotation-response.schemas';
import { httpStatusForCode } from './error-status';
import { HostErrorCode } from './host-errors';
import { DATABASE_ERRORS, OPERATION_ERRORS } from './openapi-errors';

/**
 * The schema of every success body, by its name under `components.schemas`. Operations point at
 * them with `@ApiOkResponse({ schema: bodyOf('…') })` (or Created); `withSuccessSchemas` puts them in
 * the document.
 */
export const RESPONSE_SCHEMAS = {
  ...CREDENTIAL_RESPONSE_SCHEMAS,
  ...ROTATION_RESPONSE_SCHEMAS,
  ...AUDIT_RESPONSE_SCHEMAS,
  ...OAUTH_RESPONSE_SCHEMAS,
  ...KEY_RESPONSE_SCHEMAS,
};

export type ResponseSchemaName = keyof typeof RESPONSE_SCHEMAS;

/** A `$ref` to one of the RESPONSE_SCHEMAS. */
export const bodyOf = (name: ResponseSchemaName) => ({ $ref: `#/components/schemas/${name}` });

/**
 * Adds RESPONSE_SCHEMAS to the document's components. They are built from each other as plain objects
 * (Fastify's serializer needs them whole); here a schema nested in another is written as a `$ref` to
 * its component instead, so each is declared once.
 */
export function withSuccessSchemas(document: OpenAPIObject): OpenAPIObject {
  const names = new Map<unknown, ResponseSchemaName>(Object.entries(RESPONSE_SCHEMAS).map(([name, schema]) => [schema, name as ResponseSchemaName]));
  const referenced = (node: unknown, top = false): unknown => {
    if (Array.isArray(node)) return node.map((n) => referenced(n));
    if (node === null || typeof node !== 'object') return node;
    const name = names.get(node);
    if (name && !top) return bodyOf(name);
    return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, referenced(value)]));
  };
  document.components ??= {};
  const schemas = (document.components.schemas ??= {});
  for (const [name, schema] of Object.entries(RESPONSE_SCHEMAS)) {
    if (name in schemas) throw new Error(`OpenAPI: two schemas are named ${name}`);
    schemas[name] = referenced(schema, true) as never;
  }
  return document;
}

/** The body of every error answer (AllExceptionsFilter, the routing and parser errors): documented once. */
const ERROR_BODY = {
  type: 'object',
  required: ['statusCode', 'error', 'message', 'code', 'codeName', 'requestId'],
  properties: {
    statusCode: { type: 'integer', example: 404 },
    error: { type: 'string', example: 'NOT_FOUND' },
    message: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }], description: 'never repeats a value of the request' },
    code: {
      type: 'integer',
      description: "the stable error code (README, \"Error codes\"): a lib's typed error (1000–10999), or the host's own refusal (900xx: 90001 VALIDATION_FAILED, 90004 UNAUTHENTICATED, 90005 MISSING_SCOPE, 90013 RATE_LIMIT_EXCEEDED, …)",
      example: 2002,
    },
    codeName: { type: 'string', description: "the code's name, unique across every lib and the host: switch on it or on code, never on message", example: 'NOT_FOUND' },
    requestId: { type: 'string', description: 'as in the x-request-id header' },
    errorId: { type: 'string', description: '5xx only: the id of the log line with the details' },
  },
} as const;

const ERROR = (description: string, headers?: Record<string, unknown>) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } },
  ...(headers ? { headers } : {}),
});

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;
const RETRY_AFTER = { 'Retry-After': { schema: { type: 'integer' }, description: 'seconds' } };

/** What each error status means, whatever the operation; the codes behind it are the operation's own. */
const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'the request is not what this operation takes (nothing was changed)',
  401: 'no valid API key or bearer token',
  403: 'refused',
  404: "not found in the caller's tenant (another tenant's resources answer the same)",
  409: "the resource's state refuses it (a lost compare-and-set, a name taken, revoked, in progress): read it again before repeating",
  410: 'gone: it expired',
  413: 'the request body is larger than the operation accepts',
  414: 'a path parameter is longer than the router accepts (refused before the route)',
  415: 'the request body is not application/json in UTF-8, or it is compressed',
  429: 'rate limited',
  500: 'a fault of the service (errorId names its log line)',
  502: 'an upstream (Key Vault, the OAuth provider, the integration) refused us or answered nonsense',
  503: 'unavailable for now (the database, the audit log, Key Vault, the OAuth provider): retry after Retry-After when given',
  504: 'Key Vault did not answer in time: read the resource before repeating a write',
};

/**
 * The answers every operation can give besides its success, each with the error body once (`ErrorBody`): 400 (it
 * takes input, or refuses any it does not take), 401 and 429 (it is authenticated and rate limited), 403 with the
 * scopes it needs (`x-required-scopes`, also in its description), 404 and 414 (it names a resource in its path), 413
 * and 415 (it may carry a body, parsed as JSON), 500, 503 (the database) — and those of the typed errors its service raises
 * (OPERATION_ERRORS), each status naming its codes. An authenticated operation missing from OPERATION_ERRORS, or an
 * entry naming no operation, fails the build of the document: the table stays in step with the routes.
 */
export function withErrorAnswers(document: OpenAPIObject): OpenAPIObject {
  document.components ??= {};
  document.components.schemas = { ...document.components.schemas, ErrorBody: ERROR_BODY as never };
  const listed = new Set(Object.keys(OPERATION_ERRORS));
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const codes = new Map<number, Set<number>>();
      const add = (status: number, ...byCodes: number[]) => {
        const set = codes.get(status) ?? new Set<number>();
        codes.set(status, set);
        for (const code of byCodes) set.add(code);
      };
      const parameters = (op.parameters ?? []) as Array<{ in?: string }>;
      const secured = (op.security ?? document.security ?? []).length > 0;
      const scopes = (op as { 'x-required-scopes'?: string[] })['x-required-scopes'] ?? [];
      if (secured) {
        // The strict input checks refuse a query parameter or body the operation does not take.
        add(400, HostErrorCode.VALIDATION_FAILED);
        add(401, HostErrorCode.UNAUTHENTICATED);
        add(429, HostErrorCode.RATE_LIMIT_EXCEEDED);
        add(503, ...DATABASE_ERRORS);
        const own = OPERATION_ERRORS[`${method} ${path}`];
        if (!own) throw new Error(`OpenAPI: ${method} ${path} has no entry in OPERATION_ERRORS (openapi-errors.ts)`);
        listed.delete(`${method} ${path}`);
        for (const code of own) add(httpStatusForCode(code) ?? 500, code);
      } else if (parameters.length > 0 || op.requestBody) add(400, HostErrorCode.VALIDATION_FAILED);
      if (scopes.length > 0) {
        add(403, HostErrorCode.MISSING_SCOPE);
        if (!op.description?.includes('Scope:')) op.description = `${op.description ? `${op.description}\n\n` : ''}Scope: ${scopes.join(', ')}.`;
      }
      if (parameters.some((p) => p.in === 'path')) {
        add(404);
        add(414, HostErrorCode.URI_TOO_LONG);
      }
      // Fastify reads a body on these methods whatever the route: past its limit it is refused before the route. One
      // sent to a route taking none is parsed all the same (`{}` is taken as none only as uncompressed JSON): 415 too,
      // but on a route taking any bytes (the webhook verify route).
      if (method !== 'get') add(413, HostErrorCode.BODY_TOO_LARGE);
      const media = Object.keys((op.requestBody as { content?: object } | undefined)?.content ?? {});
      if (method !== 'get' && media.every((m) => m === 'application/json')) add(415, HostErrorCode.UNSUPPORTED_MEDIA_TYPE);
      add(500, HostErrorCode.INTERNAL);
      for (const [status, byCodes] of [...codes].sort(([a], [b]) => a - b)) {
        let description = STATUS_TEXT[status] ?? 'refused';
        if (status === 403 && scopes.length > 0) description = `missing scope: ${scopes.join(', ')} (admin has every scope)${byCodes.size > 1 ? ', or the resource refuses it' : ''}`;
        // Numbers, not names: a codeName is the error class's (README, "Error codes"), not always its enum key.
        if (byCodes.size > 0) description += `. Codes: ${[...byCodes].sort((a, b) => a - b).join(', ')}`;
        const headers = status === 401 ? { 'WWW-Authenticate': { schema: { type: 'string' } } } : status === 429 || status === 503 ? RETRY_AFTER : undefined;
        op.responses[String(status)] ??= ERROR(description, headers) as never;
      }
    }
  }
  if (listed.size > 0) throw new Error(`OpenAPI: OPERATION_ERRORS names no operation of the document: ${[...listed].join(', ')}`);
  return document;
}
