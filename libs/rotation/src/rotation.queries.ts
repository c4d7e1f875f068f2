import { Inject, Injectable } from '@nestjs/common';
import { Clock, type OperationContext } from '@app/common';
import { CredentialsService, CredentialStatus, CredentialType, type CredentialMetadata } from '@app/credentials';
import { RotationValidationError } from './errors/rotation.errors';
import { assertContext } from './internal/validation';
import { DAY_MS } from './jobs/expiry-monitor.service';
import { RotationPolicyService } from './policies/rotation-policy.service';
import type { RotationMode } from './policies/rotation-policy.types';
import { ROTATION_CLOCK } from './rotation.constants';

export interface UpcomingExpiry {
  credential: CredentialMetadata;
  /** Negative once expired. */
  daysLeft: number;
  /** The policy's warn-before: whether the expiry monitor warns about it yet. */
  warnBeforeDays: number;
}

export interface DueRotation {
  credential: CredentialMetadata;
  dueAt: Date;
  rotateAfterDays: number;
  rotation: RotationMode;
}

/** The tenant's "what needs attention" views: expiries and rotations due, with their policies. Metadata only. */
@Injectable()
export class RotationQueries {
  constructor(
    private readonly credentials: CredentialsService,
    private readonly policies: RotationPolicyService,
    @Inject(ROTATION_CLOCK) private readonly clock: Clock,
  ) {}

  /** Live credentials expiring within `days` (expired ones included), soonest first. */
  async upcomingExpiries(ctx: OperationContext, days = 30): Promise<UpcomingExpiry[]> {
    assertContext(ctx);
    assertDaysWindow(days);
    const now = this.clock.nowMs();
    const overrides = await this.policies.tenantOverrides(ctx.tenantId);
    const out: UpcomingExpiry[] = [];
    // The libs' internal credentials (pending rotation values, staged webhook secrets) are not listed: not the tenant's.
    for (const c of await this.credentials.listExpiring(ctx, days, 1000)) {
      if (!c.expiresAt) continue;
      const policy = await this.policies.resolve({ id: c.id, tenantId: c.tenantId, integrationId: c.integrationId, type: c.type }, overrides);
      out.push({ credential: c, daysLeft: Math.floor(((c.expiresAt.getTime() - now) / DAY_MS) * 100) / 100, warnBeforeDays: policy.warnBeforeDays });
    }
    return out;
  }

  /** Active credentials whose rotation falls due within `days` (already due ones included), soonest first. */
  async dueRotations(ctx: OperationContext, days = 0): Promise<DueRotation[]> {
    assertContext(ctx);
    assertDaysWindow(days);
    const horizon = this.clock.nowMs() + days * DAY_MS;
    const overrides = await this.policies.tenantOverrides(ctx.tenantId);
    const out: DueRotation[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.credentials.list(ctx, { status: CredentialStatus.ACTIVE, limit: 200, cursor });
      for (const c of page.items) {
        if (c.type === CredentialType.OAUTH_ACCESS_TOKEN) continue;
        const policy = await this.policies.resolve({ id: c.id, tenantId: c.tenantId, integrationId: c.integrationId, type: c.type }, overrides);
        if (policy.rotateAfterDays <= 0) continue;
        const dueAt = new Date((c.rotatedAt ?? c.createdAt).getTime() + policy.rotateAfterDays * DAY_MS);
        if (dueAt.getTime() <= horizon) out.push({ credential: c, dueAt, rotateAfterDays: policy.rotateAfterDays, rotation: policy.rotation });
      }
      cursor = page.nextCursor;
    } while (cursor);
    return out.sort((a, b) => a.dueAt.getTime() - b.dueAt.getTime());
  }
}

function assertDaysWindow(days: number): void {
  if (!Number.isInteger(days) || days < 0 || days > 3650) throw new RotationValidationError('days must be an integer in 0..3650', 'days');
}
