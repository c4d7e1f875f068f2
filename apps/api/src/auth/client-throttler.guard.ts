import { Injectable } from '@nestjs/common';
import { ThrottlerGuard } from '@nestjs/throttler';
import type { Principal } from './scopes';

/** Rate limits per authenticated client (falls back to the IP for unauthenticated routes). */
@Injectable()
export class ClientThrottlerGuard extends ThrottlerGuard {
  protected override async getTracker(req: Record<string, any>): Promise<string> {
    const p = req.principal as Principal | undefined;
    return p ? p.id : `ip:${req.ip}`;
  }
}
