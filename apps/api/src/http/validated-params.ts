import { BadRequestException, Body as NestBody, createParamDecorator, ExecutionContext, Param as NestParam, Query as NestQuery, type PipeTransform, type Type } from '@nestjs/common';
import { PATH_METADATA, ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum';
import { ApiParam } from '@nestjs/swagger';
import { declaredFields, hostValidationPipe } from './strict-input';

// The host's input parameters. Nest's `@Body()`, `@Query()` and `@Param()` with the host's ValidationPipe as
// their first pipe, in place of a global pipe: Nest runs a global pipe on every parameter, the custom ones
// (`@OpContext()`, a credential id) included, each through a chain of five promises; a handler whose
// parameters have no pipe gets them without one (on the value read, two chains of three; profiled).
// Controllers import these, not Nest's (an ESLint rule), and the host refuses to start with a body, query or
// path parameter that does not go through the pipe (assertValidatedInput).

const VALIDATE = hostValidationPipe();

/** Nest's `@Body()`, validated by the host's ValidationPipe. */
export const Body = (property?: string, ...pipes: PipeTransform[]): ParameterDecorator =>
  property === undefined ? NestBody(VALIDATE, ...pipes) : NestBody(property, VALIDATE, ...pipes);

/** Nest's `@Query()`, validated by the host's ValidationPipe. */
export const Query = (property?: string, ...pipes: PipeTransform[]): ParameterDecorator =>
  property === undefined ? NestQuery(VALIDATE, ...pipes) : NestQuery(property, VALIDATE, ...pipes);

/** Nest's `@Param()`, validated by the host's ValidationPipe. */
export const Param = (property?: string, ...pipes: PipeTransform[]): ParameterDecorator =>
  property === undefined ? NestParam(VALIDATE, ...pipes) : NestParam(property, VALIDATE, ...pipes);

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/** Whether a path segment is a credential id CredentialIdParam takes (the same check). */
export function isCredentialIdParam(raw: unknown): raw is string {
  return typeof raw === 'string' && UUID_V4.test(raw);
}

const credentialId = createParamDecorator((name: string, ctx: ExecutionContext): string => {
  const raw = ctx.switchToHttp().getRequest<{ params: Record<string, string | undefined> }>().params[name];
  // Names the segment and what it takes (ParseUUIDPipe's "Validation failed (uuid v 4 is expected)" did neither): never the caller's text.
  if (!isCredentialIdParam(raw)) throw new BadRequestException(`the ${name} in the path must be a credential id (a UUID, as GET /v1/credentials lists them)`);
  // UUIDs are case-insensitive (RFC 9562); ids are stored lower case: an upper-case id named nothing.
  return raw.toLowerCase();
});

/**
 * A credential id path segment: a UUID v4, in any case, as stored (lower case). Checked as it is read, with
 * no pipe (see above); documented in OpenAPI as the `@Param()` it replaces was.
 */
export const CredentialIdParam =
  (name = 'id'): ParameterDecorator =>
  (target, key, index) => {
    credentialId(name)(target, key, index);
    const descriptor = key === undefined ? undefined : Object.getOwnPropertyDescriptor(target, key);
    if (descriptor) ApiParam({ name, required: true, schema: { type: 'string', format: 'uuid' } })(target, key!, descriptor);
  };

// Nest's parameter kinds whose value comes from the request as sent.
const REQUEST_INPUT_KINDS = new Map<number, string>([
  [RouteParamtypes.BODY, 'body'],
  [RouteParamtypes.QUERY, 'query'],
  [RouteParamtypes.PARAM, 'path parameter'],
  [RouteParamtypes.FILE, 'file'],
  [RouteParamtypes.FILES, 'files'],
  [RouteParamtypes.RAW_BODY, 'raw body'],
  [RouteParamtypes.COOKIES, 'cookies'],
  [RouteParamtypes.SIGNED_COOKIES, 'signed cookies'],
]);

/** The HTTP route handlers of these controllers, each with its parameters' metadata (Nest's ROUTE_ARGS_METADATA). */
function* routeHandlers(controllers: Iterable<Type<unknown>>): Generator<{ controller: Type<unknown>; method: string; args: Record<string, { index: number; data?: unknown; pipes?: unknown[] }> }> {
  for (const controller of controllers) {
    for (const method of Object.getOwnPropertyNames(controller.prototype)) {
      // HTTP routes only (a gRPC handler's payload is checked by its own pipes).
      const handler: unknown = Object.getOwnPropertyDescriptor(controller.prototype, method)?.value;
      if (typeof handler !== 'function' || Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
      yield { controller, method, args: Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, method) ?? {} };
    }
  }
}

/** Every query parameter name a route of these controllers declares: `@Query('name')`, or a field of a `@Query()` DTO. */
export function declaredQueryNames(controllers: Iterable<Type<unknown>>): Set<string> {
  const names = new Set<string>();
  for (const { controller, method, args } of routeHandlers(controllers)) {
    for (const [key, arg] of Object.entries(args)) {
      if (Number(key.split(':')[0]) !== RouteParamtypes.QUERY) continue;
      if (typeof arg.data === 'string') {
        names.add(arg.data);
        continue;
      }
      const dto = (Reflect.getMetadata('design:paramtypes', controller.prototype, method) as Array<Type<unknown>> | undefined)?.[arg.index];
      if (dto) for (const field of declaredFields(dto)) names.add(field);
    }
  }
  return names;
}

/** `Controller.method: kind` for each body, query or path parameter of these controllers' handlers that the host's ValidationPipe does not check first. */
export function unvalidatedInput(controllers: Iterable<Type<unknown>>): string[] {
  const out: string[] = [];
  for (const { controller, method, args } of routeHandlers(controllers)) {
    for (const [key, arg] of Object.entries(args)) {
      const kind = REQUEST_INPUT_KINDS.get(Number(key.split(':')[0]));
      if (kind && arg.pipes?.[0] !== VALIDATE) out.push(`${controller.name}.${method}: ${kind}`);
    }
  }
  return out;
}

/** Refuses to start a host whose routes take input the ValidationPipe never sees (a controller importing Nest's `@Body()`). */
export function assertValidatedInput(controllers: Iterable<Type<unknown>>): void {
  const missing = unvalidatedInput(controllers);
  if (missing.length > 0) {
    throw new Error(`Route input not validated (use @Body/@Query/@Param from http/validated-params, not @nestjs/common):\n  - ${missing.join('\n  - ')}`);
  }
}
