import { Inject, Injectable } from '@nestjs/common';
import { boundedList, type BoundedList, Clock, type OperationContext } from '@app/common';
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

/** How many `upcomingExpiriesBounded` and `dueRotationsBounded` answer by default (the host's routes: all they answer). */
export const ATTENTION_LIST_LIMIT = 1000;

/** The tenant's "what needs attention" views: expiries and rotations due, with their policies. Metadata only. */
@Injectable()
export class RotationQueries {
  constructor(
    private readonly credentials: CredentialsService,
    private readonly policies: RotationPolicyService,
    @Inject(ROTATION_CLOCK) private readonly clock: Clock,
  ) {}

  /** Live credentials expiring within `days` (expired ones included), soonest first: `upcomingExpiriesBounded`'s items. */
  async upcomingExpiries(ctx: OperationContext, days = 30): Promise<UpcomingExpiry[]> {
    return (await this.upcomingExpiriesBounded(ctx, days)).items;
  }

  /**
   * Live credentials expiring within `days` (expired ones included), soonest first: the first `limit` (1..10000), and
   * `truncated` when more expire within the window (one row past the limit read, not counted). All of them: the
   * Credentials lib's `list` with `expiringBefore`, paged.
   */
  async upcomingExpiriesBounded(ctx: OperationContext, days = 30, limit = ATTENTION_LIST_LIMIT): Promise<BoundedList<UpcomingExpiry>> {
    assertContext(ctx);
    assertDaysWindow(days);
    assertLimit(limit);
    const now = this.clock.nowMs();
    const overrides = await this.policies.tenantOverrides(ctx.tenantId);
    const out: UpcomingExpiry[] = [];
    // The libs' internal credentials (pending rotation values, staged webhook secrets) are not listed: not the tenant's.
    const expiring = await this.credentials.listExpiringBounded(ctx, days, limit);
    for (const c of expiring.items) {
      if (!c.expiresAt) continue;
      const policy = await this.policies.resolve({ id: c.id, tenantId: c.tenantId, integrationId: c.integrationId, type: c.type }, overrides);
      out.push({ credential: c, daysLeft: Math.floor(((c.expiresAt.getTime() - now) / DAY_MS) * 100) / 100, warnBeforeDays: policy.warnBeforeDays });
    }
    return { items: out, truncated: expiring.truncated };
  }

  /** Active credentials whose rotation falls due within `days` (already due ones included), soonest first: every one. */
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

  /**
   * `dueRotations`, the soonest `limit` (1..10000) of them, and `truncated` when more are due. The due set is computed
   * in full as `dueRotations` does (a due date is the policy's, not a column): only the answer is bounded.
   */
  async dueRotationsBounded(ctx: OperationContext, days = 0, limit = ATTENTION_LIST_LIMIT): Promise<BoundedList<DueRotation>> {
    assertContext(ctx);
    assertLimit(limit);
    return boundedList(await this.dueRotations(ctx, days), limit);
  }
}

function assertLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new RotationValidationError('limit must be an integer in 1..10000', 'limit');
}

function assertDaysWindow(days: number): void {
  if (!Number.isInteger(days) || days < 0 || days > 3650) throw new RotationValidationError('days must be an integer in 0..3650', 'days');
}
