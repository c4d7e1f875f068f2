import { CanActivate, ExecutionContext, Inject, Injectable, Logger, UnauthorizedException } from '@nestjs/common';
import { ModuleRef, Reflector } from '@nestjs/core';
import { ThrottlerException, ThrottlerStorage } from '@nestjs/throttler';
import type { Metadata } from '@grpc/grpc-js';
import { AuditAction, AuditResult, AuditService } from '@app/audit';
import { describeError, type OperationContext } from '@app/common';
import { REQUIRED_SCOPES } from '../../auth/auth.decorators';
import { failedAuthenticationKey, UNAUTHENTICATED_TENANT } from '../../auth/auth.guard';
import { AuthenticationFailed, AuthService } from '../../auth/auth.service';
import { APP_CONFIG, AppConfig } from '../../config/app.config';
import { MissingScopeException } from '../../http/host-errors';
import { requestIdOf } from '../../logging/logging.options';
import { hasScope, Principal, Scope } from '../../auth/scopes';
import { grpcCallRecord, REQUEST_ID_METADATA } from './grpc-call-observer';

/** What a gRPC handler gets as its third argument (grpc-js' server call), as far as we read it. */
interface GrpcCall {
  getPeer?: () => string;
  getPath?: () => string;
  /** grpc-js' server call: `cancelled` (and the 'cancelled' event) once the client cancelled or the deadline passed. */
  cancelled?: boolean;
  once?: (event: 'cancelled', listener: () => void) => unknown;
  /** Set by GrpcAuthGuard. */
  operationContext?: OperationContext;
}

const logger = new Logger('GrpcAuthGuard');
const RATE_WINDOW_MS = 60_000;

/**
 * The gRPC side of the host's global AuthGuard (authentication, scopes, rate limit; HTTP only): the
 * same credentials — an `x-api-key` or `authorization: Bearer <JWT>` metadata entry —, the same
 * @RequireScopes, the same audit rows for refusals, and RATE_LIMIT_PER_MINUTE per client and method
 * in the HTTP limiter's storage (cluster-wide with REDIS_URL). The tenant comes from the principal,
 * never from a message.
 */
@Injectable()
export class GrpcAuthGuard implements CanActivate {
  private storage?: ThrottlerStorage;

  constructor(
    private readonly reflector: Reflector,
    private readonly auth: AuthService,
    private readonly audit: AuditService,
    private readonly moduleRef: ModuleRef,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const metadata = context.switchToRpc().getContext<Metadata>();
    const call = context.getArgByIndex<GrpcCall>(2);
    const headers = {
      'x-api-key': single(metadata, 'x-api-key'),
      authorization: single(metadata, 'authorization'),
    };
    const userAgent = single(metadata, 'user-agent')?.slice(0, 256);
    const ip = peerAddress(call.getPeer?.());
    // The call's request id (observeGrpcCalls chose it, and sends it back): the audit rows' correlation id.
    const record = grpcCallRecord(metadata);
    const correlationId = record?.requestId ?? requestIdOf(single(metadata, REQUEST_ID_METADATA));
    const resource = `gRPC ${call.getPath?.() ?? context.getHandler().name}`.slice(0, 256);
    let principal: Principal;
    try {
      principal = await this.auth.authenticate(headers);
    } catch (e) {
      if (!(e instanceof AuthenticationFailed)) throw e;
      // As over HTTP (one counter per IP, shared): past the limit RESOURCE_EXHAUSTED, and no audit row.
      await this.throttle(failedAuthenticationKey('default', ip ?? ''));
      const claimed = headers['x-api-key'] ? /^cvk_([A-Za-z0-9-]{1,64})_/.exec(headers['x-api-key'])?.[1] : undefined;
      const actor = { id: claimed ? `claimed-api-key:${claimed}` : headers.authorization ? 'claimed-bearer' : 'anonymous', ip, userAgent };
      await this.auditRefusal(AuditAction.AUTH_FAILURE, { tenantId: UNAUTHENTICATED_TENANT, actor, correlationId }, resource, 'UNAUTHENTICATED');
      throw new UnauthorizedException(e.message);
    }
    // The call's access line names who called.
    if (record) record.principal = { tenantId: principal.tenantId, actorId: principal.id };
    const needed = this.reflector.getAllAndOverride<Scope[]>(REQUIRED_SCOPES, [context.getHandler(), context.getClass()]) ?? [];
    const missing = needed.filter((s) => !hasScope(principal, s));
    const ctx: OperationContext = { tenantId: principal.tenantId, actor: { id: principal.id, ip, userAgent }, correlationId, signal: callSignal(call) };
    if (missing.length > 0) {
      await this.auditRefusal(AuditAction.ACCESS_DENIED, ctx, resource, 'MISSING_SCOPE', { missing });
      throw new MissingScopeException(`missing scope: ${missing.join(', ')}`);
    }
    await this.throttle(`grpc-${resource}-${principal.id}`);
    call.operationContext = ctx;
    return true;
  }

  /** One count per client and method, as the HTTP limiter counts per client and route; over it, RESOURCE_EXHAUSTED. */
  private async throttle(key: string): Promise<void> {
    // The storage is the ThrottlerModule's, inside AuthModule (not exported): found once, by token.
    this.storage ??= this.moduleRef.get<ThrottlerStorage>(ThrottlerStorage, { strict: false });
    const { isBlocked, timeToBlockExpire } = await this.storage.increment(key, RATE_WINDOW_MS, this.config.rateLimit.perMinute, RATE_WINDOW_MS, 'default');
    if (isBlocked) throw new GrpcRateLimitedException(Math.max(1, timeToBlockExpire) * 1000);
  }

  private async auditRefusal(action: AuditAction, context: OperationContext, resource: string, errorCode: string, details: Record<string, unknown> = {}): Promise<void> {
    try {
      await this.audit.recordRead({ action, context, resource, result: AuditResult.DENIED, errorCode, details });
    } catch (e) {
      // The refusal stands either way; a failing audit log is reported by the audit lib's own health.
      // By class and code only: a database error's text may quote the row it could not write.
      logger.warn(`Could not audit a refused gRPC call: ${describeError(e)}`);
    }
  }
}

/** Over the per-minute limit: RESOURCE_EXHAUSTED with a RetryInfo of when the block ends (HTTP's Retry-After). */
export class GrpcRateLimitedException extends ThrottlerException {
  constructor(readonly retryAfterMs: number) {
    super('too many requests: RATE_LIMIT_PER_MINUTE per client and method');
  }
}

/** The caller's OperationContext, set by GrpcAuthGuard on the call (the handler's third argument). */
export function grpcOperationContext(call: GrpcCall): OperationContext {
  if (!call.operationContext) throw new Error('GrpcAuthGuard did not run for this handler');
  return call.operationContext;
}

/**
 * Aborts when the call ends without its answer: the client cancelled it, or its deadline passed (grpc-js then
 * answers DEADLINE_EXCEEDED itself and emits 'cancelled'). The Key Vault calls it has not sent yet are dropped.
 * ('cancelled' also follows a sent answer, when nothing is left to drop.)
 */
function callSignal(call: GrpcCall): AbortSignal | undefined {
  if (!call.once) return undefined;
  const controller = new AbortController();
  if (call.cancelled) controller.abort();
  else call.once('cancelled', () => controller.abort());
  return controller.signal;
}

/** A metadata entry given once as text; several values are ambiguous and count as none. */
function single(metadata: Metadata, key: string): string | undefined {
  const values = metadata.get(key);
  return values.length === 1 && typeof values[0] === 'string' && values[0] ? values[0] : undefined;
}

/** `ipv4:127.0.0.1:51234` / `ipv6:[::1]:51234` → the address. */
function peerAddress(peer: string | undefined): string | undefined {
  const m = peer ? /^(?:ipv[46]:)?\[?([^\]]+?)\]?:\d+$/.exec(peer) : null;
  return m ? m[1] : undefined;
}
