import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { AuditAction, AuditResult, AuditService } from '@app/audit';
import { Clock, Outbox, TransactionRunner, type OperationContext } from '@app/common';
import { CredentialsService } from '@app/credentials';
import type { RotationPolicyEntity } from '../entities/rotation-policy.entity';
import { RotationPolicyConflictError, RotationPolicyNotFoundError, RotationValidationError } from '../errors/rotation.errors';
import { assertContext, checkedCredentialId, assertDays, assertMode, scopeKey } from '../internal/validation';
import { ROTATION_CLOCK, ROTATION_RESOLVED_OPTIONS } from '../rotation.constants';
import { RotationEvents } from '../rotation.events';
import type { ResolvedRotationOptions } from '../rotation.options';
import { POLICY_FIELDS, resolvePolicy, toOverride, type PolicySubject } from './policy-resolution';
import { RotationPolicyRepository } from './rotation-policy.repository';
import type { EffectivePolicy, PolicyOverrideInput, PolicyScopeInput, PolicyValues, RotationPolicyOverride } from './rotation-policy.types';

/**
 * Rotation policies: the defaults per type (module options) and the tenant's overrides per tenant,
 * integration and credential (`cv_rotation_policies`). Every change commits with its audit row
 * (`POLICY_CHANGE`) and its outbox event (`rotation.policy_changed`) in one transaction; a `set` that changes
 * nothing writes nothing.
 */
@Injectable()
export class RotationPolicyService {
  constructor(
    private readonly rows: RotationPolicyRepository,
    private readonly runner: TransactionRunner,
    private readonly outbox: Outbox,
    private readonly audit: AuditService,
    private readonly credentials: CredentialsService,
    @Inject(ROTATION_CLOCK) private readonly clock: Clock,
    @Inject(ROTATION_RESOLVED_OPTIONS) private readonly options: ResolvedRotationOptions,
  ) {}

  /** Every override of the tenant. */
  async list(ctx: OperationContext): Promise<RotationPolicyOverride[]> {
    assertContext(ctx);
    return (await this.rows.listByTenant(ctx.tenantId)).map(toOverride);
  }

  /** The override at one scope (POLICY_NOT_FOUND when there is none). */
  async get(ctx: OperationContext, scope: PolicyScopeInput): Promise<RotationPolicyOverride> {
    assertContext(ctx);
    const row = await this.rows.find({ tenantId: ctx.tenantId, ...scopeKey(scope) });
    if (!row) throw new RotationPolicyNotFoundError(describeScope(scope));
    return toOverride(row);
  }

  /**
   * Creates or changes the override at `input`'s scope: a given field replaces the stored one
   * (`null` clears it: inherited again), an absent one stays. `expectedVersion` is a compare-and-set
   * on the override's `rowVersion` (0: it must not exist yet). An existing override whose given fields all equal the
   * stored ones is returned as stored: no write, no audit row, no event (a stale `expectedVersion` is still refused).
   */
  async set(ctx: OperationContext, input: PolicyOverrideInput, options: { expectedVersion?: number } = {}): Promise<RotationPolicyOverride> {
    assertContext(ctx);
    const key = { tenantId: ctx.tenantId, ...scopeKey(input) };
    assertDays(input.rotateAfterDays, 'rotateAfterDays');
    assertDays(input.warnBeforeDays, 'warnBeforeDays');
    assertMode(input.rotation);
    if (input.rotateAfterDays === undefined && input.warnBeforeDays === undefined && input.rotation === undefined) {
      throw new RotationValidationError('nothing to set: give rotateAfterDays, warnBeforeDays or rotation', 'input');
    }
    // A credential-level override names a credential of this tenant (another tenant's reads as missing).
    if (key.level === 'credential') await this.credentials.getMetadata(ctx, key.target);
    for (let attempt = 1; ; attempt++) {
      const out = await this.setOnce(ctx, key, input, options);
      if (out !== LOST) return out;
      // Lost to a concurrent writer of the scope: without a compare-and-set of its own, the caller asked for these
      // values whatever was there — look again (then it may find them stored, and write nothing).
      if (options.expectedVersion !== undefined || attempt >= SET_ATTEMPTS) throw new RotationPolicyConflictError('the policy changed meanwhile; read it again');
    }
  }

  /** One read-compare-write of `set` in a transaction; LOST when a concurrent writer of the scope got there first. */
  private setOnce(ctx: OperationContext, key: PolicyKey, input: PolicyOverrideInput, options: { expectedVersion?: number }): Promise<RotationPolicyOverride | typeof LOST> {
    const now = this.clock.now();
    return this.runner.run(async () => {
      const before = await this.rows.find(key);
      if (options.expectedVersion !== undefined && options.expectedVersion !== (before?.rowVersion ?? 0)) {
        throw new RotationPolicyConflictError(`the policy changed meanwhile (expected version ${options.expectedVersion}, now ${before?.rowVersion ?? 0})`);
      }
      const pick = <K extends PolicyField>(k: K) => (input[k] !== undefined ? input[k] : (before?.[k] ?? null));
      // Every given field equal to the stored one: nothing written, rowVersion kept, no audit row or event.
      if (before && POLICY_FIELDS.every((k) => pick(k) === before[k])) return toOverride(before);
      const next: RotationPolicyEntity = {
        id: before?.id ?? randomUUID(),
        ...key,
        rotateAfterDays: pick('rotateAfterDays') as number | null,
        warnBeforeDays: pick('warnBeforeDays') as number | null,
        rotation: pick('rotation') as string | null,
        createdAt: before?.createdAt ?? now,
        updatedAt: now,
        updatedBy: ctx.actor.id,
        rowVersion: (before?.rowVersion ?? 0) + 1,
      };
      // Lost to a concurrent writer of the scope (another replica, say), whether it updated or created the override.
      if (!(await (before ? this.rows.compareAndSet(before, next) : this.rows.insert(next)))) return LOST;
      await this.changed(ctx, before ? 'updated' : 'created', next, before ?? undefined);
      return toOverride(next);
    });
  }

  /** Removes the override at one scope: its fields are inherited again. */
  async remove(ctx: OperationContext, scope: PolicyScopeInput): Promise<void> {
    assertContext(ctx);
    const key = { tenantId: ctx.tenantId, ...scopeKey(scope) };
    await this.runner.run(async () => {
      const before = await this.rows.find(key);
      if (!before || !(await this.rows.delete(before))) throw new RotationPolicyNotFoundError(describeScope(scope));
      await this.changed(ctx, 'deleted', before, before);
    });
  }

  /** The policy that applies to a credential of the tenant, and which level gave each field. */
  async effectivePolicy(ctx: OperationContext, credentialId: string): Promise<EffectivePolicy> {
    assertContext(ctx);
    credentialId = checkedCredentialId(credentialId);
    const meta = await this.credentials.getMetadata(ctx, credentialId);
    return this.resolve({ id: meta.id, tenantId: meta.tenantId, integrationId: meta.integrationId, type: meta.type });
  }

  /** For the jobs (no tenant-facing check): the effective policy of a credential they already hold. */
  async resolve(subject: PolicySubject, tenantRows?: readonly RotationPolicyEntity[]): Promise<EffectivePolicy> {
    const rows = tenantRows ?? (await this.rows.listApplicable(subject.tenantId, subject.integrationId, subject.id));
    return resolvePolicy(this.options.defaults, rows, subject);
  }

  /** Every override of a tenant, for a job resolving many of its credentials. */
  tenantOverrides(tenantId: string): Promise<RotationPolicyEntity[]> {
    return this.rows.listByTenant(tenantId);
  }

  /** The audit row and the event of a change; `changed`: the fields whose value differs from `before`'s (none before: null). */
  private async changed(ctx: OperationContext, change: 'created' | 'updated' | 'deleted', row: RotationPolicyEntity, before?: RotationPolicyEntity): Promise<void> {
    const fields = (r?: RotationPolicyEntity) => (r ? { rotateAfterDays: r.rotateAfterDays, warnBeforeDays: r.warnBeforeDays, rotation: r.rotation } : null);
    const scope = { level: row.level, target: row.target || null, credentialType: row.credentialType || null };
    const changed: Record<string, PolicyField[]> = change === 'deleted' ? {} : { changed: POLICY_FIELDS.filter((k) => row[k] !== (before?.[k] ?? null)) };
    await this.audit.record({
      action: AuditAction.POLICY_CHANGE,
      context: ctx,
      resource: `rotation-policy:${row.id}`,
      result: AuditResult.SUCCESS,
      details: { change, ...scope, ...changed, before: fields(before), after: change === 'deleted' ? null : fields(row) },
    });
    await this.outbox.add({
      name: RotationEvents.POLICY_CHANGED,
      tenantId: ctx.tenantId,
      payload: { policyId: row.id, change, ...scope, ...changed, after: change === 'deleted' ? null : fields(row), actorId: ctx.actor.id, occurredAt: this.clock.now().toISOString() },
    });
  }
}

/** The row key of one override: its tenant and scope. */
type PolicyKey = { tenantId: string } & ReturnType<typeof scopeKey>;
/** `setOnce`'s answer when a concurrent writer of the scope committed first. */
const LOST = Symbol('lost');
/** Attempts of a `set` without `expectedVersion` that keeps losing to concurrent writers of its scope. */
const SET_ATTEMPTS = 3;

type PolicyField = keyof PolicyValues;

function describeScope(scope: PolicyScopeInput): string {
  return `${scope?.level}${scope?.credentialType ? `/${scope.credentialType}` : ''}`;
}
