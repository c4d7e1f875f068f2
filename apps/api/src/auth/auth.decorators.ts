import { applyDecorators, createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import { ApiExtension } from '@nestjs/swagger';
import type { Principal, Scope } from './scopes';

export const IS_PUBLIC = 'credential-vault:public';
export const REQUIRED_SCOPES = 'credential-vault:scopes';

/** Route needs no authentication (health, metrics, docs). */
export const Public = () => SetMetadata(IS_PUBLIC, true);

/** Route needs every listed scope (`admin` satisfies any). */
export const RequireScopes = (...scopes: Scope[]) => applyDecorators(SetMetadata(REQUIRED_SCOPES, scopes), ApiExtension('x-required-scopes', scopes));

/** The authenticated principal, set by AuthGuard. */
export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => {
  return ctx.switchToHttp().getRequest<{ principal: Principal }>().principal;
});
