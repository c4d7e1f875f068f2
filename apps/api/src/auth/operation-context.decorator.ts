import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { withCallerSignal, type OperationContext } from '@app/common';
import type { Principal } from './scopes';

/**
 * The services' view of the caller: tenant and actor come from the authenticated principal only,
 * never from the path or body, so a caller cannot act for another tenant. `signal` aborts when the client
 * leaves before its answer: the Key Vault calls it has not sent yet are dropped.
 */
export const OpContext = createParamDecorator((_: unknown, ctx: ExecutionContext): OperationContext => {
  const req = ctx.switchToHttp().getRequest<{ principal: Principal; ip?: string; id?: string; headers: Record<string, string> }>();
  const ua = req.headers['user-agent'];
  const res = ctx.switchToHttp().getResponse<{ raw?: ServerResponse } | undefined>()?.raw;
  return withCallerSignal(
    { tenantId: req.principal.tenantId, actor: { id: req.principal.id, ip: req.ip, userAgent: ua ? ua.slice(0, 256) : undefined }, correlationId: req.id },
    res,
  );
});
