import type { OpenAPIObject } from '@nestjs/swagger';

/** The body of every error answer (AllExceptionsFilter, the routing and parser errors): documented once. */
const ERROR_BODY = {
  type: 'object',
  required: ['statusCode', 'error', 'message', 'requestId'],
  properties: {
    statusCode: { type: 'integer', example: 404 },
    error: { type: 'string', example: 'NOT_FOUND' },
    message: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }], description: 'never repeats a value of the request' },
    code: { type: 'integer', description: 'the stable error code of a typed error (README, "Error codes")', example: 2002 },
    codeName: { type: 'string', example: 'NOT_FOUND' },
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
