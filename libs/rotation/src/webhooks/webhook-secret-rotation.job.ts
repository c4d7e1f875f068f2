import { Inject, Injectable, Logger, Optional, type OnModuleInit } from '@nestjs/common';
import { AuditResult, AuditService } from '@app/audit';
import { Clock, describeError, DistributedLock, LOCK_KEYS, ScheduledJobs, systemContext, TransactionRunner, type OperationContext } from '@app/common';
import { CredentialErrorCode, CredentialsService } from '@app/credentials';
import { WebhookSecretState, type WebhookSecretVersionEntity } from './persistence/webhook-secret-version.entity';
import { WebhookSecretVersionRepository } from './persistence/webhook-secret-version.repository';
import { WebhookSecretKeyring } from './webhook-secret-keyring';
import { WebhookSecretRotator } from './webhook-secret-rotator';
import { WebhookSecretUpdaterRegistry } from './webhook-secret-updater';
import type { ResolvedWebhookSecretsOptions } from './webhook-secrets.options';
import {
  WEBHOOK_ROTATION_DUE_POLICY,
  WEBHOOK_ROTATION_JOB,
  WEBHOOK_SECRETS_CLOCK,
  WEBHOOK_SECRETS_LOCK,
  WEBHOOK_SECRETS_OPTIONS,
  WebhookAuditActions,
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
  /** Due secrets of integrations without a WebhookSecretUpdater (not rotated). */
  noUpdater: number;
  /** Credentials deleted since: their rows were retired. */
  orphaned: number;
  /** Revoked credentials (never rotated: that would make them active again). */
  revoked: number;
}

const PAGE = 200;

/**
 * The `webhook-secret-rotation` job (default daily): retires live secrets past their window,
 * resumes pending rotations, and rotates current secrets past their "rotate after". One run at a
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
    private readonly updaters: WebhookSecretUpdaterRegistry,
    private readonly runner: TransactionRunner,
    private readonly audit: AuditService,
    private readonly credentials: CredentialsService,
    @Inject(WEBHOOK_SECRETS_LOCK) private readonly lock: DistributedLock,
    @Inject(WEBHOOK_SECRETS_CLOCK) private readonly clock: Clock,
    @Inject(WEBHOOK_SECRETS_OPTIONS) private readonly options: ResolvedWebhookSecretsOptions,
    @Optional() @Inject(WEBHOOK_ROTATION_DUE_POLICY) private readonly policy?: WebhookRotationDuePolicy,
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

  /** One run, exclusive across replicas whoever calls it (the job, the CLI, tests). */
  async runOnce(): Promise<{ acquired: false } | ({ acquired: true } & WebhookRotationRunSummary)> {
    const result = await this.lock.tryRun(LOCK_KEYS.rotationWebhookSecrets, () => this.work());
    return result.acquired ? { acquired: true, ...result.value } : { acquired: false };
  }

  private async work(): Promise<WebhookRotationRunSummary> {
    const summary: WebhookRotationRunSummary = { retired: await this.retireExpired(), resumed: 0, rotated: 0, failed: 0, noUpdater: 0, orphaned: 0, revoked: 0 };
    let budget = this.options.job.maxPerRun;
    const tried = new Set<string>(); // a failed resume is not retried again by the due scan of the same run
    for (const row of await this.rows.pending(budget)) {
      budget--;
      tried.add(row.credentialId);
      const outcome = await this.attempt(row);
      if (outcome === 'rotated') summary.resumed++;
      else if (outcome !== 'not_due') summary[outcome]++;
    }
    const now = this.clock.now();
    let after: { currentSinceMs: number; id: string } | undefined;
    while (budget > 0) {
      const page = await this.rows.currentPage(PAGE, after);
      for (const row of page) {
        if (budget <= 0) break;
        if (tried.has(row.credentialId)) continue;
        const dueAt = await this.dueAt(row);
        if (dueAt === null || dueAt.getTime() > now.getTime()) continue;
        if (!this.updaters.has(row.integrationId)) {
          summary.noUpdater++;
          continue;
        }
        budget--;
        const outcome = await this.attempt(row, row.currentSince ?? now);
        if (outcome !== 'not_due') summary[outcome]++;
      }
      if (page.length < PAGE) break;
      const last = page[page.length - 1];
      after = { currentSinceMs: last.currentSince?.getTime() ?? 0, id: last.id };
    }
    if (summary.failed || summary.noUpdater) this.logger.warn(`webhook-secret-rotation: ${summary.failed} failed, ${summary.noUpdater} due without an updater`);
    return summary;
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
  private async attempt(row: WebhookSecretVersionEntity, ifCurrentSince?: Date): Promise<'rotated' | 'not_due' | 'failed' | 'orphaned' | 'revoked'> {
    const ctx = systemContext(row.tenantId, WEBHOOK_ROTATION_JOB);
    try {
      return (await this.rotator.rotate(ctx, row.credentialId, { ifCurrentSince })).outcome;
    } catch (e) {
      if ((e as { code?: unknown }).code === CredentialErrorCode.NOT_FOUND) {
        await this.forget(ctx, row.credentialId);
        return 'orphaned';
      }
      if ((e as { code?: unknown }).code === CredentialErrorCode.REVOKED) return 'revoked';
      this.logger.warn(`webhook-secret-rotation: credential ${row.credentialId}: ${describeError(e)}`);
      return 'failed';
    }
  }

  /** The credential was deleted: its rows retire (and a pending value's staging credential goes too). */
  private async forget(ctx: OperationContext, credentialId: string): Promise<void> {
    for (const row of await this.rows.active(credentialId)) {
      await this.runner.run(async () => {
        await this.rows.transition(row.id, row.state, { state: WebhookSecretState.RETIRED, stagingCredentialId: null, lastError: 'CREDENTIAL_DELETED', updatedAt: this.clock.now() });
        if (row.stagingCredentialId) await this.credentials.delete(ctx, row.stagingCredentialId).catch(() => undefined);
      });
    }
    this.keyring.invalidate(credentialId);
  }

  /** Live secrets past their window stop verifying (the keyring filters them already; this records it). */
  private async retireExpired(): Promise<number> {
    let retired = 0;
    for (;;) {
      const now = this.clock.now();
      const batch = await this.rows.expiredLive(now.getTime(), PAGE);
      for (const row of batch) {
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
