import { CanActivate, ExecutionContext, ForbiddenException, Injectable, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthenticationFailed, AuthService } from './auth.service';
import { IS_PUBLIC, REQUIRED_SCOPES } from './auth.decorators';
import { hasScope, Principal, Scope } from './scopes';

/** Global guard: every route is authenticated unless marked @Public(); @RequireScopes() is enforced here. */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly auth: AuthService,
    private readonly reflector: Reflector,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) return true;
    const req = context.switchToHttp().getRequest<{ headers: Record<string, string>; principal?: Principal }>();
    let principal: Principal;
    try {
      principal = await this.auth.authenticate(req.headers);
    } catch (e) {
      if (e instanceof AuthenticationFailed) throw new UnauthorizedException(e.message);
      throw e;
    }
    req.principal = principal;
    const needed = this.reflector.getAllAndOverride<Scope[]>(REQUIRED_SCOPES, targets) ?? [];
    const missing = needed.filter((s) => !hasScope(principal, s));
    if (missing.length > 0) throw new ForbiddenException(`missing scope: ${missing.join(', ')}`);
    return true;
  }
}
