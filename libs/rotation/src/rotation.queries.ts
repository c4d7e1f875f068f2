import { Inject, Injectable } from '@nestjs/common';
import { boundedList, type BoundedList, Clock, type OperationContext } from '@app/common';
import { CredentialsService, CredentialType, MAX_LIST_BY_LAST_CHANGE, type CredentialMetadata, type ListByLastChangeQuery } from '@app/credentials';
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
    return this.due(ctx, days, undefined);
  }

  /**
   * `dueRotations`, the soonest `limit` (1..10000) of them, and `truncated` when more are due: the soonest `limit + 1` of
   * each group of credentials sharing one policy (below), merged.
   */
  async dueRotationsBounded(ctx: OperationContext, days = 0, limit = ATTENTION_LIST_LIMIT): Promise<BoundedList<DueRotation>> {
    assertContext(ctx);
    assertLimit(limit);
    return boundedList(await this.due(ctx, days, limit + 1), limit);
  }

  /**
   * The due set, soonest first (then oldest, then by id: the order of the tenant's list, as before). A due date is the
   * last change (`rotatedAt`, else `createdAt`) plus the policy's `rotateAfterDays`, and the policy depends only on the
   * integration and type — but for credential-level overrides. So the credentials split into groups of one policy: each
   * integration that has overrides, and every other integration, by the types whose `rotateAfterDays` is the same; each
   * group's due ones are those changed before one threshold, which the credentials lib reads from its index of
   * (tenant, type, last change), least recently changed — soonest due — first. Credentials with their own override are
   * read by id and checked one by one. `perGroup`: how many of each group at most (undefined: all of them).
   */
  private async due(ctx: OperationContext, days: number, perGroup: number | undefined): Promise<DueRotation[]> {
    assertContext(ctx);
    assertDaysWindow(days);
    const horizon = this.clock.nowMs() + days * DAY_MS;
    const overrides = await this.policies.tenantOverrides(ctx.tenantId);
    const own = [...new Set(overrides.filter((r) => r.level === 'credential').map((r) => r.target.toLowerCase()))];
    const ownSet = new Set(own);
    // Left out by the query while the list fits one (overrides outlive their credentials: there may be more), else here.
    const excludeIds = own.length <= MAX_LIST_BY_LAST_CHANGE ? own : undefined;
    const notOwn = (c: CredentialMetadata) => !ownSet.has(c.id);
    const integrations = [...new Set(overrides.filter((r) => r.level === 'integration').map((r) => r.target))];
    const out: DueRotation[] = [];
    const take = async (c: CredentialMetadata) => {
      const policy = await this.policies.resolve({ id: c.id, tenantId: c.tenantId, integrationId: c.integrationId, type: c.type }, overrides);
      if (policy.rotateAfterDays <= 0) return;
      const dueAt = new Date((c.rotatedAt ?? c.createdAt).getTime() + policy.rotateAfterDays * DAY_MS);
      if (dueAt.getTime() <= horizon) out.push({ credential: c, dueAt, rotateAfterDays: policy.rotateAfterDays, rotation: policy.rotation });
    };
    // '' names no integration and no credential: an override's target never is empty.
    for (const integrationId of [...integrations, '']) {
      const byDays = new Map<number, CredentialType[]>();
      for (const type of ROTATED_TYPES) {
        const { rotateAfterDays } = await this.policies.resolve({ id: '', tenantId: ctx.tenantId, integrationId, type }, overrides);
        if (rotateAfterDays > 0) byDays.set(rotateAfterDays, [...(byDays.get(rotateAfterDays) ?? []), type]);
      }
      for (const [rotateAfterDays, types] of byDays) {
        const scope = integrationId ? { integrationId } : { excludeIntegrationIds: integrations };
        const query = { types, ...scope, ...(excludeIds ? { excludeIds } : {}), changedAtOrBefore: new Date(horizon - rotateAfterDays * DAY_MS) };
        await this.eachCredential(ctx, query, perGroup, take, notOwn);
      }
    }
    for (let i = 0; i < own.length; i += MAX_LIST_BY_LAST_CHANGE) await this.eachCredential(ctx, { types: ROTATED_TYPES, ids: own.slice(i, i + MAX_LIST_BY_LAST_CHANGE) }, undefined, take);
    return out.sort((a, b) => a.dueAt.getTime() - b.dueAt.getTime() || a.credential.createdAt.getTime() - b.credential.createdAt.getTime() || (a.credential.id < b.credential.id ? -1 : 1));
  }

  /** The first `max` (all when undefined) credentials of `query` that `keep` keeps, page by page. */
  private async eachCredential(
    ctx: OperationContext,
    query: Omit<ListByLastChangeQuery, 'limit' | 'cursor'>,
    max: number | undefined,
    take: (c: CredentialMetadata) => Promise<void>,
    keep: (c: CredentialMetadata) => boolean = () => true,
  ): Promise<void> {
    let cursor: string | undefined;
    let seen = 0;
    do {
      const page = await this.credentials.listByLastChange(ctx, { ...query, limit: Math.min(DUE_PAGE, max === undefined ? DUE_PAGE : max - seen), cursor });
      for (const c of page.items) {
        if (!keep(c)) continue;
        await take(c);
        seen++;
      }
      cursor = page.nextCursor;
    } while (cursor && (max === undefined || seen < max));
  }
}

/** Types a rotation schedule applies to: an OAuth access token is refreshed, not rotated. */
const ROTATED_TYPES = Object.values(CredentialType).filter((t) => t !== CredentialType.OAUTH_ACCESS_TOKEN);
/** Credentials read per page of a due group. */
const DUE_PAGE = 500;

function assertLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new RotationValidationError('limit must be an integer in 1..10000', 'limit');
}

function assertDaysWindow(days: number): void {
  if (!Number.isInteger(days) || days < 0 || days > 3650) throw new RotationValidationError('days must be an integer in 0..3650', 'days');
}
