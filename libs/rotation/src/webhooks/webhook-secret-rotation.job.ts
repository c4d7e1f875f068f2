import { Inject, Injectable, Logger, Optional, type OnModuleInit } from '@nestjs/common';
import { AuditResult, AuditService } from '@app/audit';
import { Clock, describeError, DistributedLock, isVaultRefusal, LOCK_KEYS, Outbox, ScheduledJobs, systemContext, TransactionRunner, type OperationContext } from '@app/common';
import { CredentialErrorCode, CredentialsService, CredentialType } from '@app/credentials';
import { RotationNoticeRepository } from '../jobs/rotation-notice.repository';
import { VaultRefusals } from '../jobs/vault-refusals';
import { WebhookSecretState, type WebhookSecretVersionEntity } from './persistence/webhook-secret-version.entity';
import { WebhookSecretVersionRepository } from './persistence/webhook-secret-version.repository';
import { WebhookSecretKeyring } from './webhook-secret-keyring';
import { WebhookSecretRotator } from './webhook-secret-rotator';
import type { WebhookDiscardReason } from './webhook-rotation-steps';
import type { ResolvedWebhookSecretsOptions } from './webhook-secrets.options';
import {
  WEBHOOK_ROTATION_DUE_NOTICE,
  WEBHOOK_ROTATION_DUE_POLICY,
  WEBHOOK_ROTATION_JOB,
  WEBHOOK_SECRETS_CLOCK,
  WEBHOOK_SECRETS_LOCK,
  WEBHOOK_SECRETS_OPTIONS,
  WebhookAuditActions,
  WebhookSecretEvents,
  type WebhookRotationDuePolicy,
} from './webhook-secrets.tokens';

/** What one run did (counts only). */
export interface WebhookRotationRunSummary {
  /** Live secrets whose overlap window closed. */
  retired: number;
  /** Interrupted or failed rotations completed. */
  resumed: number;
  /** Due secrets rotated. */
  rotated: number;
  /** Rotations that failed (retried by the next run). */
  failed: number;
  /** Due secrets of integrations without a WebhookSecretUpdater (not rotated: an operator stages and activates one). */
  noUpdater: number;
  /** Of those, `webhook_secret.rotation_due` raised by this run (once per credential version, ever). */
  dueNotified: number;
  /** Secrets staged by an operator, waiting for their activation (their webhook secret neither deleted nor revoked). */
  awaitingActivation: number;
  /** Staged secrets discarded after waiting longer than `stagedTtlMs`. */
  discarded: number;
  /** Credentials deleted since: their rows were retired, a pending rotation discarded (`DELETED`). */
  orphaned: number;
  /** Revoked credentials (never rotated: that would make them active again; a pending rotation of one is discarded). */
  revoked: number;
  /** Rotations due or pending not tried: the vault refused this run's writes for a permission (`VaultRefusals`; next run). */
  deferred: number;
}

/** The writes the vault refused this run for a permission. */
interface RunState {
  refusals: VaultRefusals;
}

const PAGE = 200;

/**
 * The `webhook-secret-rotation` job (default daily): retires live secrets past their window,
 * resumes pending rotations, and rotates current secrets past their "rotate after". Integrations
 * without a WebhookSecretUpdater are the operator's: a due secret raises `webhook_secret.rotation_due`
 * once per credential version (deduplicated in `cv_rotation_notices`, no error, no warning per run),
 * a staged secret waits for its activation and is discarded after `stagedTtlMs`. One run at a
 * time across replicas (`LOCK_KEYS.rotationWebhookSecrets`), one rotation per credential
 * (the rotator's `credentialRotation` lock, where the due check is repeated).
 */
@Injectable()
export class WebhookSecretRotationJob implements OnModuleInit {
  private readonly logger = new Logger(WebhookSecretRotationJob.name);

  constructor(
    private readonly jobs: ScheduledJobs,
    private readonly rows: WebhookSecretVersionRepository,
    private readonly rotator: WebhookSecretRotator,
    private readonly keyring: WebhookSecretKeyring,
    private readonly runner: TransactionRunner,
    private readonly audit: AuditService,
    private readonly credentials: CredentialsService,
    private readonly outbox: Outbox,
    @Inject(WEBHOOK_SECRETS_LOCK) private readonly lock: DistributedLock,
    @Inject(WEBHOOK_SECRETS_CLOCK) private readonly clock: Clock,
    @Inject(WEBHOOK_SECRETS_OPTIONS) private readonly options: ResolvedWebhookSecretsOptions,
    @Optional() @Inject(WEBHOOK_ROTATION_DUE_POLICY) private readonly policy?: WebhookRotationDuePolicy,
    // RotationModule provides it; the webhook part alone (an embedder's own wiring) only counts due secrets.
    @Optional() private readonly notices?: RotationNoticeRepository,
  ) {}

  onModuleInit(): void {
    const { enabled, cron, timeZone } = this.options.job;
    this.jobs.schedule({
      name: WEBHOOK_ROTATION_JOB,
      enabled,
      cron,
      timeZone,
      switchOption: 'RotationModule option webhooks.job.enabled',
      lockKey: LOCK_KEYS.rotationWebhookSecrets,
      lockedBy: 'work',
      run: () => this.runOnce(),
    });
  }

  /** One run, exclusive across replicas whoever calls it (the job, the CLI, tests); `LockLostError` (9003) if the lock is lost mid-run. */
  async runOnce(): Promise<{ acquired: false } | ({ acquired: true } & WebhookRotationRunSummary)> {
    const result = await this.lock.tryRun(LOCK_KEYS.rotationWebhookSecrets, (held) => this.work(held));
    return result.acquired ? { acquired: true, ...result.value } : { acquired: false };
  }

  /**
   * Stops before its next row once `held` aborts (rejecting with its `LockLostError`): the row in hand finishes (a
   * rotation under the credential's own lock), what was done stays, and the next run, here or where the lock went, does the rest.
   */
  private async work(held: AbortSignal): Promise<WebhookRotationRunSummary> {
    const summary: WebhookRotationRunSummary = {
      retired: await this.retireExpired(held),
      resumed: 0,
      rotated: 0,
      failed: 0,
      noUpdater: 0,
      dueNotified: 0,
      awaitingActivation: 0,
      discarded: 0,
      orphaned: 0,
      revoked: 0,
      deferred: 0,
    };
    const state: RunState = { refusals: new VaultRefusals() };
    let budget = this.options.job.maxPerRun;
    const tried = new Set<string>(); // a failed resume is not retried again by the due scan of the same run
    for (const row of await this.rows.pending(budget)) {
      held.throwIfAborted();
      budget--;
      tried.add(row.credentialId);
      // A secret deleted or revoked since: its pending rotation is neither awaited nor resumed, but discarded.
      const ended = await this.discardEnded(row);
      if (ended) {
        summary[ended]++;
        continue;
      }
      if (!this.rotator.hasUpdater(row.integrationId)) {
        // Staged by an operator: theirs to activate; only a stale one is ours to discard.
        const outcome = this.rotator.stale(row, row.integrationId) ? await this.discardStale(row) : 'awaitingActivation';
        summary[outcome]++;
        continue;
      }
      if (state.refusals.stopped) {
        summary.deferred++;
        continue;
      }
      const outcome = await this.attempt(row, state);
      if (outcome === 'rotated') summary.resumed++;
      else if (outcome !== 'not_due') summary[outcome]++;
    }
    const now = this.clock.now();
    let after: { currentSinceMs: number; id: string } | undefined;
    while (budget > 0) {
      const page = await this.rows.currentPage(PAGE, after);
      for (const row of page) {
        held.throwIfAborted();
        if (budget <= 0) break;
        if (tried.has(row.credentialId)) continue;
        const dueAt = await this.dueAt(row);
        if (dueAt === null || dueAt.getTime() > now.getTime()) continue;
        if (!this.rotator.hasUpdater(row.integrationId)) {
          summary.noUpdater++;
          if (await this.notifyDue(row, dueAt, now)) summary.dueNotified++;
          continue;
        }
        budget--;
        if (state.refusals.stopped) {
          summary.deferred++;
          continue;
        }
        const outcome = await this.attempt(row, state, row.currentSince ?? now);
        if (outcome !== 'not_due') summary[outcome]++;
      }
      if (page.length < PAGE) break;
      const last = page[page.length - 1];
      after = { currentSinceMs: last.currentSince?.getTime() ?? 0, id: last.id };
    }
    const otherFailures = summary.failed - state.refusals.count;
    if (otherFailures) this.logger.warn(`webhook-secret-rotation: ${otherFailures} failed`);
    const refused = state.refusals.describe('webhook-secret-rotation', 'write(s)', 'rotation(s)', summary.deferred);
    if (refused) this.logger.error(refused);
    if (summary.dueNotified || summary.discarded) {
      this.logger.log(`webhook-secret-rotation: ${summary.dueNotified} due without an updater (notified), ${summary.discarded} staged secrets discarded unactivated`);
    }
    return summary;
  }

  /**
   * `webhook_secret.rotation_due` for a due secret no updater can rotate, once per credential version:
   * the dedupe row and the outbox event commit together. False when raised before (or not wired).
   */
  private async notifyDue(row: WebhookSecretVersionEntity, dueAt: Date, now: Date): Promise<boolean> {
    const notices = this.notices;
    if (!notices || row.credentialVersion === null) return false;
    const version = row.credentialVersion;
    if ((await notices.raised(row.credentialId, version)).has(WEBHOOK_ROTATION_DUE_NOTICE)) return false;
    try {
      await this.runner.run(async () => {
        const eventId = await this.outbox.add({
          name: WebhookSecretEvents.ROTATION_DUE,
          tenantId: row.tenantId,
          payload: {
            credentialId: row.credentialId,
            tenantId: row.tenantId,
            integrationId: row.integrationId,
            connectionId: row.connectionId,
            type: CredentialType.WEBHOOK_SECRET,
            version,
            dueAt: dueAt.toISOString(),
            action: 'Stage a new webhook secret, install it at the provider, then activate it.',
          },
        });
        await notices.record({ credentialId: row.credentialId, version, notice: WEBHOOK_ROTATION_DUE_NOTICE, tenantId: row.tenantId, eventId, createdAt: now });
      });
      return true;
    } catch (e) {
      // Raised by a concurrent run (the primary key): nothing to add. Anything else: the next run retries.
      if ((await notices.raised(row.credentialId, version)).has(WEBHOOK_ROTATION_DUE_NOTICE)) return false;
      this.logger.warn(`webhook-secret-rotation: the rotation-due notice of credential ${row.credentialId} failed: ${describeError(e)}; retried next run`);
      return false;
    }
  }

  /**
   * A pending rotation whose webhook secret is gone (or revoked) awaits nothing: discarded (`DELETED` / `REVOKED`,
   * audited by the rotator), as the change's outbox event would (WebhookSecretEndedCleanup; this run may come first, or
   * events may be off). Null for a live secret: one metadata read, no lock.
   */
  private async discardEnded(row: WebhookSecretVersionEntity): Promise<'orphaned' | 'revoked' | 'failed' | null> {
    const ctx = systemContext(row.tenantId, WEBHOOK_ROTATION_JOB);
    try {
      const ended = await this.rotator.ended(ctx, row.credentialId);
      if (ended === 'DELETED') await this.forget(ctx, row.credentialId);
      else if (ended === 'REVOKED') await this.rotator.discardIfEnded(ctx, row.credentialId);
      return ended === 'DELETED' ? 'orphaned' : ended === 'REVOKED' ? 'revoked' : null;
    } catch (e) {
      this.logger.warn(`webhook-secret-rotation: discarding the staged secret of ended credential ${row.credentialId} failed: ${describeError(e)}`);
      return 'failed';
    }
  }

  /** Discards a staged secret nobody activated in time (audited by the rotator). */
  private async discardStale(row: WebhookSecretVersionEntity): Promise<'discarded' | 'failed' | 'orphaned'> {
    const ctx = systemContext(row.tenantId, WEBHOOK_ROTATION_JOB);
    try {
      await this.rotator.discard(ctx, row.credentialId, row.id, 'STAGED_EXPIRED', 'job');
      return 'discarded';
    } catch (e) {
      if ((e as { code?: unknown }).code === CredentialErrorCode.NOT_FOUND) {
        await this.forget(ctx, row.credentialId);
        return 'orphaned';
      }
      this.logger.warn(`webhook-secret-rotation: discarding the staged secret of credential ${row.credentialId} failed: ${describeError(e)}`);
      return 'failed';
    }
  }

  /** When the row's secret falls due, or null for never. */
  private async dueAt(row: WebhookSecretVersionEntity): Promise<Date | null> {
    if (!row.currentSince) return null;
    const ms = this.policy
      ? await this.policy.rotateAfterMs({ tenantId: row.tenantId, integrationId: row.integrationId, connectionId: row.connectionId, credentialId: row.credentialId })
      : this.options.rotateAfterMs;
    return ms ? new Date(row.currentSince.getTime() + ms) : null;
  }

  /** One rotation; failures are recorded by the rotator and logged here by name and code only. */
  private async attempt(row: WebhookSecretVersionEntity, state: RunState, ifCurrentSince?: Date): Promise<'rotated' | 'not_due' | 'failed' | 'orphaned' | 'revoked'> {
    const ctx = systemContext(row.tenantId, WEBHOOK_ROTATION_JOB);
    try {
      const { outcome } = await this.rotator.rotate(ctx, row.credentialId, { ifCurrentSince }, 'job');
      if (outcome === 'rotated') state.refusals.succeeded();
      return outcome;
    } catch (e) {
      if ((e as { code?: unknown }).code === CredentialErrorCode.NOT_FOUND) {
        await this.forget(ctx, row.credentialId);
        return 'orphaned';
      }
      if ((e as { code?: unknown }).code === CredentialErrorCode.REVOKED) return 'revoked';
      if (isVaultRefusal(e)) {
        state.refusals.refused(e); // logged once for the run, by work()
        return 'failed';
      }
      this.logger.warn(`webhook-secret-rotation: credential ${row.credentialId}: ${describeError(e)}`);
      return 'failed';
    }
  }

  /**
   * The credential was deleted: a pending rotation is discarded as the delete's event does (`DELETED`, audited), then
   * its other rows retire (and a pending row left by a failed discard, with its staging credential) with the same
   * `lastError` — one spelling for one cause (rows retired by earlier releases carry `CREDENTIAL_DELETED`; nothing reads it).
   */
  private async forget(ctx: OperationContext, credentialId: string): Promise<void> {
    await this.rotator.discardIfEnded(ctx, credentialId).catch((e: unknown) => {
      this.logger.warn(`webhook-secret-rotation: discarding the pending rotation of deleted credential ${credentialId} failed: ${describeError(e)}; its rows are retired`);
    });
    for (const row of await this.rows.active(credentialId)) {
      await this.runner.run(async () => {
        await this.rows.transition(row.id, row.state, { state: WebhookSecretState.RETIRED, stagingCredentialId: null, lastError: 'DELETED' satisfies WebhookDiscardReason, updatedAt: this.clock.now() });
        if (row.stagingCredentialId) await this.credentials.delete(ctx, row.stagingCredentialId).catch(() => undefined);
      });
    }
    this.keyring.invalidate(credentialId);
  }

  /** Live secrets past their window stop verifying (the keyring filters them already; this records it). */
  private async retireExpired(held: AbortSignal): Promise<number> {
    let retired = 0;
    for (;;) {
      const now = this.clock.now();
      const batch = await this.rows.expiredLive(now.getTime(), PAGE);
      for (const row of batch) {
        held.throwIfAborted();
        await this.runner.run(async () => {
          if (!(await this.rows.transition(row.id, WebhookSecretState.LIVE, { state: WebhookSecretState.RETIRED, updatedAt: now }))) return;
          retired++;
          await this.audit.record({
            action: WebhookAuditActions.RETIRED,
            context: systemContext(row.tenantId, WEBHOOK_ROTATION_JOB),
            resource: row.credentialId,
            result: AuditResult.SUCCESS,
            details: { version: row.credentialVersion, liveUntil: row.liveUntil?.toISOString() ?? null },
          });
        });
        this.keyring.invalidate(row.credentialId);
      }
      if (batch.length < PAGE) return retired;
    }
  }
}
