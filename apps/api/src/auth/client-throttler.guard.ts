import { ExecutionContext, Injectable } from '@nestjs/common';
import { ThrottlerGuard } from '@nestjs/throttler';
import type { Principal } from './scopes';

/** Rate limits per authenticated client (falls back to the IP for unauthenticated routes). */
@Injectable()
export class ClientThrottlerGuard extends ThrottlerGuard {
  protected override async getTracker(req: Record<string, any>): Promise<string> {
    const p = req.principal as Principal | undefined;
    return p ? p.id : `ip:${req.ip}`;
  }

  /**
   * Same key as the base guard (route + throttler + tracker) without its per-request SHA-256: the
   * tracker is a client id or an IP, never a secret. In process the key is kept as is; the Redis
   * storage hashes it before it leaves the process.
   */
  protected override generateKey(context: ExecutionContext, tracker: string, throttlerName: string): string {
    return `${context.getClass().name}-${context.getHandler().name}-${throttlerName}-${tracker}`;
  }
}
