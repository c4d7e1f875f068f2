import { Inject, Injectable, Logger } from '@nestjs/common';
import { Clock, DistributedLock, isVaultRefusal, LOCK_KEYS, Outbox, TransactionRunner, systemContext, type OperationContext } from '@app/common';
import { CredentialConflictError, CredentialExpiryScanner, CredentialNotFoundError, CredentialsService, CredentialStatus, CredentialType, isInternalCredential, type LiveCredentialRef } from '@app/credentials';
import type { RotationPolicyEntity } from '../entities/rotation-policy.entity';
import { RotationPolicyService } from '../policies/rotation-policy.service';
import { ROTATION_CHECK_ACTOR, ROTATION_CLOCK, ROTATION_LOCK, ROTATION_RESOLVED_OPTIONS } from '../rotation.constants';
import { RotationEvents } from '../rotation.events';
import type { ResolvedRotationOptions } from '../rotation.options';
import { RotationInProgressError } from '../errors/rotation.errors';
import { RotationService } from '../rotation.service';
import { DAY_MS, noticePayload } from './expiry-monitor.service';
import { RotationNoticeRepository } from './rotation-notice.repository';
import { VaultRefusals } from './vault-refusals';

export interface RotationCheckResult {
  acquired: boolean;
  scanned: number;
  /** Credentials whose rotation is due (manual and automatic). */
  due: number;
  /** `credential.rotation_due` events raised (once per credential version). */
  notified: number;
  rotated: number;
  failed: number;
  /** Automatic rotations due but not tried: the vault refused this run's writes for a permission (`VaultRefusals`; next run). */
  deferred: number;
  /** Automatic rotations due that another was running (a caller, a webhook step): left for the next run, not failed. */
  inProgress: number;
}

/** A run's result, and the writes the vault refused it for a permission. */
interface CheckRun {
  out: RotationCheckResult;
  refusals: VaultRefusals;
}

/**
 * The rotation-check's work: every live credential whose policy's `rotateAfterDays` has passed since
 * its last rotation (or creation). Manual ones raise `credential.rotation_due` once per credential
 * version (dedupe row + event in one transaction); automatic ones are rotated through RotationService
 * (a handler, else a generator; with neither they are reported like manual ones). Webhook secrets are
 * left to the webhook-secret-rotation job (two-phase, with an overlap), OAuth access tokens to refresh, the lib's
 * pseudo credentials (pending rotation values, staged webhook secrets: `isInternalCredential`) to their owners.
 */
@Injectable()
export class RotationCheckService {
  private readonly logger = new Logger(RotationCheckService.name);

  constructor(
    private readonly scanner: CredentialExpiryScanner,
    private readonly credentials: CredentialsService,
    private readonly policies: RotationPolicyService,
    private readonly rotation: RotationService,
    private readonly notices: RotationNoticeRepository,
    private readonly runner: TransactionRunner,
    private readonly outbox: Outbox,
    @Inject(ROTATION_LOCK) private readonly lock: DistributedLock,
    @Inject(ROTATION_CLOCK) private readonly clock: Clock,
    @Inject(ROTATION_RESOLVED_OPTIONS) private readonly options: ResolvedRotationOptions,
  ) {}

  /** One run, under `LOCK_KEYS.rotationCheck`: exclusive across replicas whoever calls it; `LockLostError` (9003) if the lock is lost mid-run. */
  async runOnce(): Promise<RotationCheckResult> {
    const result = await this.lock.tryRun(LOCK_KEYS.rotationCheck, (held) => this.work(held));
    if (!result.acquired) return { acquired: false, scanned: 0, due: 0, notified: 0, rotated: 0, failed: 0, deferred: 0, inProgress: 0 };
    return result.value;
  }

  /** Stops before its next credential once `held` aborts (rejecting with its `LockLostError`): the next run, here or where the lock went, checks the rest. */
  private async work(held: AbortSignal): Promise<RotationCheckResult> {
    const now = this.clock.now();
    const out: RotationCheckResult = { acquired: true, scanned: 0, due: 0, notified: 0, rotated: 0, failed: 0, deferred: 0, inProgress: 0 };
    const run: CheckRun = { out, refusals: new VaultRefusals() };
    const overrides = new Map<string, RotationPolicyEntity[]>();
    const { batchSize } = this.options.rotationCheck;
    let afterId: string | undefined;
    for (;;) {
      // Nothing rotated less than a day ago can be due (the shortest policy is one day).
      const page = await this.scanner.scanLiveAcrossTenants({ statuses: [CredentialStatus.ACTIVE], changedBefore: new Date(now.getTime() - DAY_MS), limit: batchSize, afterId });
      for (const ref of page) {
        held.throwIfAborted();
        out.scanned++;
        if (ref.type === CredentialType.OAUTH_ACCESS_TOKEN || ref.type === CredentialType.WEBHOOK_SECRET || isInternalCredential(ref)) continue;
        try {
          if (!overrides.has(ref.tenantId)) overrides.set(ref.tenantId, await this.policies.tenantOverrides(ref.tenantId));
          await this.check(ref, now, overrides.get(ref.tenantId)!, run);
        } catch (e) {
          out.failed++;
          this.logger.warn(`rotation check of credential ${ref.id} (tenant ${ref.tenantId}) failed: ${(e as Error).name}`);
        }
      }
      if (page.length < batchSize) break;
      afterId = page[page.length - 1].id;
    }
    const refused = run.refusals.describe('rotation check', 'rotation write(s)', 'automatic rotation(s)', out.deferred);
    if (refused) this.logger.error(refused);
    if (out.due) this.logger.log(`rotation check: ${out.due} due, ${out.rotated} rotated, ${out.notified} notified, ${out.failed} failed${out.inProgress ? `, ${out.inProgress} left to the rotation in progress` : ''}`);
    return out;
  }

  /**
   * Rotates the credential as the scan saw it (compare-and-set on its rowVersion): one a client or another
   * replica rotated since is not due any more (false, nothing done) — rotating it again would replace the value
   * just set. Changed otherwise (its tags, say), it is rotated as it is now.
   */
  private async rotateAsScanned(ctx: OperationContext, ref: LiveCredentialRef): Promise<boolean> {
    const reason = 'scheduled: rotate-after of the policy passed';
    try {
      await this.rotation.rotate(ctx, ref.id, { reason, expectedVersion: ref.rowVersion }, { conflictRetried: true, byJob: true });
      return true;
    } catch (e) {
      if (!(e instanceof CredentialConflictError)) throw e;
      const now = await this.credentials.getMetadata(ctx, ref.id);
      if (now.version !== ref.version || now.status !== CredentialStatus.ACTIVE) return false;
      await this.rotation.rotate(ctx, ref.id, { reason, expectedVersion: now.rowVersion }, { byJob: true });
      return true;
    }
  }

  private async check(ref: LiveCredentialRef, now: Date, overrides: RotationPolicyEntity[], run: CheckRun): Promise<void> {
    const { out } = run;
    const policy = await this.policies.resolve({ id: ref.id, tenantId: ref.tenantId, integrationId: ref.integrationId, type: ref.type }, overrides);
    if (policy.rotateAfterDays <= 0) return;
    const dueAt = new Date(ref.changedAt.getTime() + policy.rotateAfterDays * DAY_MS);
    if (dueAt.getTime() > now.getTime()) return;
    out.due++;
    const ctx = systemContext(ref.tenantId, ROTATION_CHECK_ACTOR);
    if (policy.rotation === 'automatic' && this.rotation.canMint(ref) && out.rotated < this.options.rotationCheck.maxRotationsPerRun) {
      // Minting goes first (a handler may change the value at the provider): none once the vault refuses writes.
      if (run.refusals.stopped) {
        out.deferred++;
        return;
      }
      try {
        if (await this.rotateAsScanned(ctx, ref)) {
          out.rotated++;
          run.refusals.succeeded();
        }
      } catch (e) {
        // Another rotates it (a caller, or a webhook step) or it was deleted since the scan: nothing failed, the next run sees it as it is.
        if (e instanceof RotationInProgressError) return void out.inProgress++;
        if (e instanceof CredentialNotFoundError) return;
        out.failed++;
        if (isVaultRefusal(e)) run.refusals.refused(e);
        await this.rotation.reportFailure(ctx, await this.credentials.getMetadata(ctx, ref.id), e);
      }
      return;
    }
    // An expired one is told so by the expiry monitor (credential.expired): one notice, not two.
    if (ref.expiresAt && ref.expiresAt.getTime() <= now.getTime()) return;
    const raised = await this.notices.raised(ref.id, ref.version);
    if (raised.has('rotation_due')) return;
    const meta = await this.credentials.getMetadata(ctx, ref.id);
    await this.runner.run(async () => {
      const payload = { ...noticePayload(meta, 'Rotate the credential: its rotation policy says it is due.'), dueAt: dueAt.toISOString() };
      const eventId = await this.outbox.add({ name: RotationEvents.ROTATION_DUE, tenantId: ref.tenantId, payload });
      await this.notices.record({ credentialId: ref.id, version: ref.version, notice: 'rotation_due', tenantId: ref.tenantId, eventId, createdAt: now });
    });
    out.notified++;
  }
}
