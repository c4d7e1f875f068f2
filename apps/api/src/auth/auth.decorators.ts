import { applyDecorators, createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import { ApiExtension } from '@nestjs/swagger';
import type { Principal, Scope } from './scopes';

export const IS_PUBLIC = 'credential-vault:public';
export const REQUIRED_SCOPES = 'credential-vault:scopes';
export const BODY_SCOPES = 'credential-vault:body-scopes';

/** Route needs no authentication (health, metrics, docs). */
export const Public = () => SetMetadata(IS_PUBLIC, true);

/** Route needs every listed scope (`admin` satisfies any). */
export const RequireScopes = (...scopes: Scope[]) => applyDecorators(SetMetadata(REQUIRED_SCOPES, scopes), ApiExtension('x-required-scopes', scopes));

/** Scopes a request needs besides the route's when its body sets `field` to `value`. */
export interface BodyScopes {
  field: string;
  value: unknown;
  scopes: Scope[];
}

/**
 * The request also needs `scopes` when its JSON body sets `field` to `value`: one route that can do what another
 * route guards with a stronger scope (a PATCH to `status: revoked`) asks for that scope too. Checked once the body
 * is parsed; refused and audited like a missing route scope.
 */
export const RequireScopesWhenBody = (field: string, value: unknown, ...scopes: Scope[]) => SetMetadata(BODY_SCOPES, { field, value, scopes } satisfies BodyScopes);

/** The authenticated principal, set by AuthGuard. */
export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => {
  return ctx.switchToHttp().getRequest<{ principal: Principal }>().principal;
});
