import { CanActivate, ExecutionContext, ForbiddenException, Injectable, Logger, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuditAction, AuditResult, AuditService } from '@app/audit';
import type { OperationContext } from '@app/common';
import { AuthenticationFailed, AuthService } from './auth.service';
import { IS_PUBLIC, REQUIRED_SCOPES } from './auth.decorators';
import { hasScope, Principal, Scope } from './scopes';

/** Audit chain for requests whose tenant is unknown because authentication failed. */
export const UNAUTHENTICATED_TENANT = '_unauthenticated';

interface Req {
  headers: Record<string, string>;
  principal?: Principal;
  ip?: string;
  id?: string;
  method?: string;
  url?: string;
}

/**
 * Global guard: every route is authenticated unless marked @Public(); @RequireScopes() is enforced
 * here. Failures and denials are audited (buffered), so the audit lib's suspicious-activity detector
 * sees repeated failures per actor.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly logger = new Logger(AuthGuard.name);

  constructor(
    private readonly auth: AuthService,
    private readonly reflector: Reflector,
    private readonly audit: AuditService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) return true;
    const req = context.switchToHttp().getRequest<Req>();
    let principal: Principal;
    try {
      principal = await this.auth.authenticate(req.headers);
    } catch (e) {
      if (!(e instanceof AuthenticationFailed)) throw e;
      await this.auditRefusal(req, AuditAction.AUTH_FAILURE, { tenantId: UNAUTHENTICATED_TENANT, actor: claimedActor(req) }, 'UNAUTHENTICATED');
      throw new UnauthorizedException(e.message);
    }
    req.principal = principal;
    const needed = this.reflector.getAllAndOverride<Scope[]>(REQUIRED_SCOPES, targets) ?? [];
    const missing = needed.filter((s) => !hasScope(principal, s));
    if (missing.length > 0) {
      await this.auditRefusal(req, AuditAction.ACCESS_DENIED, { tenantId: principal.tenantId, actor: { id: principal.id } }, 'MISSING_SCOPE', {
        missing,
      });
      throw new ForbiddenException(`missing scope: ${missing.join(', ')}`);
    }
    return true;
  }

  private async auditRefusal(
    req: Req,
    action: AuditAction,
    who: Pick<OperationContext, 'tenantId' | 'actor'>,
    errorCode: string,
    details: Record<string, unknown> = {},
  ): Promise<void> {
    try {
      await this.audit.recordRead({
        action,
        context: { ...who, actor: { ...who.actor, ip: req.ip, userAgent: req.headers['user-agent']?.slice(0, 256) }, correlationId: req.id },
        resource: `${req.method ?? ''} ${(req.url ?? '').split('?')[0]}`.slice(0, 256),
        result: AuditResult.DENIED,
        errorCode,
        details,
      });
    } catch (e) {
      // The refusal stands either way; a failing audit log is reported by the audit lib's own health.
      this.logger.warn(`Could not audit a refused request: ${(e as Error).message}`);
    }
  }
}

/** Who the caller claims to be (never trusted, only recorded): the API key id, or anonymous. */
function claimedActor(req: Req): { id: string } {
  const key = req.headers['x-api-key'];
  const m = typeof key === 'string' ? /^cvk_([A-Za-z0-9-]{1,64})_/.exec(key) : null;
  return { id: m ? `claimed-api-key:${m[1]}` : req.headers.authorization ? 'claimed-bearer' : 'anonymous' };
}
