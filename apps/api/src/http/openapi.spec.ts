import type { OpenAPIObject } from '@nestjs/swagger';
import { withErrorAnswers } from './openapi';
import { OPERATION_ERRORS } from './openapi-errors';

type Op = { responses: Record<string, { description: string }>; requestBody?: object; parameters?: object[] };

/** A document of every operation OPERATION_ERRORS names (authenticated), plus `extra`. */
function documentOf(extra: Record<string, Record<string, Op>> = {}, without?: string): OpenAPIObject {
  const paths: Record<string, Record<string, Op>> = {};
  for (const key of Object.keys(OPERATION_ERRORS).filter((k) => k !== without)) {
    const [method, path] = key.split(' ');
    const params = [...path.matchAll(/\{(\w+)\}/g)].map((m) => ({ in: 'path', name: m[1], required: true }));
    (paths[path] ??= {})[method] = { responses: { 200: { description: 'ok' } }, parameters: params };
  }
  const json = { content: { 'application/json': { schema: {} } } };
  paths['/v1/credentials'].post.requestBody = json;
  paths['/v1/rotation/webhooks/{integrationId}/{connectionId}/verify'].post.requestBody = { content: { 'application/octet-stream': {}, 'application/json': {} } };
  for (const [path, ops] of Object.entries(extra)) Object.assign((paths[path] ??= {}), ops);
  return { openapi: '3.0.0', info: { title: 't', version: '1' }, security: [{ 'api-key': [] }], paths } as unknown as OpenAPIObject;
}

const responses = (doc: OpenAPIObject, method: 'get' | 'post' | 'delete', path: string) => doc.paths[path][method]!.responses as Record<string, { description: string }>;
const statuses = (doc: OpenAPIObject, method: 'get' | 'post' | 'delete', path: string) => Object.keys(responses(doc, method, path));

describe('withErrorAnswers', () => {
  it("lists each operation's typed errors by status, with their codes, besides the statuses every operation gives", () => {
    const doc = withErrorAnswers(documentOf());
    const value = responses(doc, 'get', '/v1/credentials/{id}/value');
    expect(statuses(doc, 'get', '/v1/credentials/{id}/value')).toEqual(['200', '400', '401', '404', '409', '414', '429', '500', '502', '503', '504']);
    expect(value['409'].description).toMatch(/Codes: 2009, 2010$/);
    expect(value['503'].description).toContain('90015');
    // A body: 413 and 415 on any method that may carry one — a route taking none still parses what is sent (`{}` as
    // text/plain is 415) —; the webhook verify route takes any bytes. A GET's body is never read (400 when sent).
    expect(statuses(doc, 'post', '/v1/credentials')).toEqual(expect.arrayContaining(['409', '413', '415']));
    expect(statuses(doc, 'delete', '/v1/credentials/{id}')).toEqual(expect.arrayContaining(['413', '415']));
    expect(statuses(doc, 'post', '/v1/audit/verify')).toEqual(expect.arrayContaining(['413', '415']));
    expect(statuses(doc, 'get', '/v1/credentials')).not.toContain('415');
    // A path parameter past the router's length is 414, before the route.
    expect(statuses(doc, 'get', '/v1/credentials/{id}')).toContain('414');
    expect(statuses(doc, 'get', '/v1/credentials')).not.toContain('414');
    // Un-revoke re-enables vault versions: the vault's answers are its own.
    expect(statuses(doc, 'post', '/v1/rotation/credentials/{id}/unrevoke')).toEqual(expect.arrayContaining(['502', '504']));
    expect(statuses(doc, 'post', '/v1/rotation/webhooks/{integrationId}/{connectionId}/verify')).not.toContain('415');
    expect(statuses(doc, 'post', '/v1/rotation/webhooks/{integrationId}/{connectionId}/secret/activate')).toContain('410');
  });

  it('refuses an authenticated operation the table does not list, and an entry naming no operation', () => {
    expect(() => withErrorAnswers(documentOf({ '/v1/new': { get: { responses: {} } } }))).toThrow('get /v1/new has no entry in OPERATION_ERRORS');
    expect(() => withErrorAnswers(documentOf({}, 'get /v1/audit'))).toThrow('OPERATION_ERRORS names no operation of the document: get /v1/audit');
  });
});
