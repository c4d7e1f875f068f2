import type { OpenAPIObject } from '@nestjs/swagger';
import { AUDIT_RESPONSE_SCHEMAS } from '../audit/audit-response.schemas';
import { CREDENTIAL_RESPONSE_SCHEMAS } from '../credentials/credential-response.schemas';
import { KEY_RESPONSE_SCHEMAS } from '../keys/key-response.schemas';
import { OAUTH_RESPONSE_SCHEMAS } from '../oauth/oauth-response.schemas';
import { ROTATION_RESPONSE_SCHEMAS } from '../rotation/rotation-response.schemas';

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

/**
 * The answers every operation can give besides its own: the error body once (`ErrorBody`), and per
 * operation 400 (it takes input), 401 and 429 (it is authenticated and rate limited), 403 with the scopes
 * it needs (`x-required-scopes`, also in its description), 404 (it names a resource in its path) and 500.
 * Declared where the operation does not declare them itself.
 */
export function withErrorAnswers(document: OpenAPIObject): OpenAPIObject {
  document.components ??= {};
  document.components.schemas = { ...document.components.schemas, ErrorBody: ERROR_BODY as never };
  for (const item of Object.values(document.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const add = (status: string, response: object) => void (op.responses[status] ??= response as never);
      const parameters = (op.parameters ?? []) as Array<{ in?: string }>;
      if (parameters.length > 0 || op.requestBody) add('400', ERROR('the request is not what this operation takes (nothing was changed)'));
      const secured = (op.security ?? document.security ?? []).length > 0;
      if (secured) {
        add('401', ERROR('no valid API key or bearer token', { 'WWW-Authenticate': { schema: { type: 'string' } } }));
        add('429', ERROR('rate limited', { 'Retry-After': { schema: { type: 'integer' }, description: 'seconds' } }));
      }
      const scopes = (op as { 'x-required-scopes'?: string[] })['x-required-scopes'];
      if (scopes && scopes.length > 0) {
        add('403', ERROR(`missing scope: ${scopes.join(', ')} (admin has every scope)`));
        if (!op.description?.includes('Scope:')) op.description = `${op.description ? `${op.description}\n\n` : ''}Scope: ${scopes.join(', ')}.`;
      }
      if (parameters.some((p) => p.in === 'path')) add('404', ERROR("not found in the caller's tenant (another tenant's resources answer the same)"));
      add('500', ERROR('a fault of the service (errorId names its log line)'));
    }
  }
  return document;
}
