import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { AuditResult, AuditService } from '@app/audit';
import { Clock, TransactionRunner, type OperationContext } from '@app/common';
import { CredentialsService, type CredentialMetadata } from '@app/credentials';
import { WebhookSecretState, WebhookSecretVersionEntity } from './persistence/webhook-secret-version.entity';
import { WebhookSecretVersionRepository } from './persistence/webhook-secret-version.repository';
import type { ResolvedWebhookSecretsOptions } from './webhook-secrets.options';
import { WEBHOOK_SECRETS_CLOCK, WEBHOOK_SECRETS_OPTIONS, WebhookAuditActions } from './webhook-secrets.tokens';

/**
 * The state changes of `cv_webhook_secret_versions` shared by enrolment, promotion and the job: the
 * current row becomes live for the overlap window, and live rows beyond `maxLiveSecrets` (oldest
 * first) or past their window are retired. Callers run these inside their `runner.run`.
 */
@Injectable()
export class WebhookSecretStates {
  constructor(
    private readonly rows: WebhookSecretVersionRepository,
    private readonly runner: TransactionRunner,
    private readonly audit: AuditService,
    private readonly credentials: CredentialsService,
    @Inject(WEBHOOK_SECRETS_CLOCK) private readonly clock: Clock,
    @Inject(WEBHOOK_SECRETS_OPTIONS) private readonly options: ResolvedWebhookSecretsOptions,
  ) {}

  /**
   * Makes `meta.version` the current row. First use of a credential (no current row): enrols it.
   * A credential rotated or rolled back outside this lib (a newer version than the current row): the
   * old current row becomes live for the overlap window, and so does each version written between it
   * and `meta.version` (rotated twice between uses: a provider may sign with the middle one), up to
   * `maxLiveSecrets`. A version a revoke withdrew (`revokedAt`) never verifies again: it gets no live
   * row, and one it had (the old current one included) is retired. The audit row names the versions
   * made live and retired. Idempotent; a concurrent enrolment loses on the unique index and the caller
   * just reads again.
   */
  async ensureCurrent(ctx: OperationContext, meta: CredentialMetadata, active: WebhookSecretVersionEntity[]): Promise<boolean> {
    const current = active.find((r) => r.state === WebhookSecretState.CURRENT);
    if (current && (current.credentialVersion ?? 0) >= meta.version) return false;
    const withdrawn = current ? await this.withdrawn(ctx, meta.id) : new Set<number>();
    const now = this.clock.now();
    await this.runner.run(async () => {
      let changed = {};
      if (current) {
        const between = await this.liveBetween(meta, current.credentialVersion ?? 0, withdrawn, now);
        const { retired } = await this.demote(current, [...active, ...between], now, withdrawn);
        changed = { liveVersions: between.map((r) => r.credentialVersion).filter((v) => !retired.includes(v ?? 0)), retiredVersions: retired };
      }
      await this.rows.insert(this.currentRow(meta, meta.version, meta.rotatedAt ?? meta.createdAt, now));
      await this.audit.record({
        action: WebhookAuditActions.ENROLLED,
        context: ctx,
        resource: meta.id,
        result: AuditResult.SUCCESS,
        details: { version: meta.version, replacedVersion: current?.credentialVersion ?? null, ...changed },
      });
    });
    return true;
  }

  /** The versions of a credential a revoke withdrew (metadata only, unaudited). */
  private async withdrawn(ctx: OperationContext, credentialId: string): Promise<Set<number>> {
    return new Set((await this.credentials.listVersions(ctx, credentialId)).filter((v) => v.revokedAt !== null).map((v) => v.version));
  }

  /**
   * Live rows for the versions after `from` and before `meta.version` (never current here: written outside this
   * lib between two uses) that no revoke withdrew, the newest `maxLiveSecrets - 1` at most — `demote` keeps no
   * more. Since when each was current is not known (null); each verifies for the overlap window from now.
   */
  private async liveBetween(meta: CredentialMetadata, from: number, withdrawn: ReadonlySet<number>, now: Date): Promise<WebhookSecretVersionEntity[]> {
    const rows: WebhookSecretVersionEntity[] = [];
    const liveUntil = new Date(now.getTime() + this.options.overlapMs);
    for (let v = meta.version - 1; v > from && rows.length < this.options.maxLiveSecrets - 1; v--) {
      if (withdrawn.has(v)) continue;
      const row = { ...this.currentRow(meta, v, now, now), state: WebhookSecretState.LIVE, currentSince: null, liveUntil };
      await this.rows.insert(row);
      rows.push(row);
    }
    return rows;
  }

  /** A new current row for `version`. */
  currentRow(meta: Pick<CredentialMetadata, 'id' | 'tenantId' | 'integrationId' | 'connectionId'>, version: number, since: Date, now: Date): WebhookSecretVersionEntity {
    return {
      id: randomUUID(),
      tenantId: meta.tenantId,
      integrationId: meta.integrationId,
      connectionId: meta.connectionId,
      credentialId: meta.id,
      credentialVersion: version,
      state: WebhookSecretState.CURRENT,
      stagingCredentialId: null,
      currentSince: since,
      liveUntil: null,
      pushStartedAt: null,
      stagedOverRowVersion: null,
      attempts: 0,
      lastError: null,
      createdAt: now,
      updatedAt: now,
    };
  }

  /**
   * The current row becomes live until now + overlap; then at most `maxLiveSecrets - 1` live rows
   * stay (the newest), the rest, any past their window and any of a `withdrawn` version (a revoke's)
   * are retired. Returns the demoted row's end of window (now, if it was retired at once) and the
   * retired versions.
   */
  async demote(
    current: WebhookSecretVersionEntity,
    active: WebhookSecretVersionEntity[],
    now: Date,
    withdrawn: ReadonlySet<number> = new Set(),
  ): Promise<{ liveUntil: Date; retired: number[] }> {
    const liveUntil = new Date(now.getTime() + this.options.overlapMs);
    await this.rows.transition(current.id, WebhookSecretState.CURRENT, { state: WebhookSecretState.LIVE, liveUntil, updatedAt: now });
    const live = [{ ...current, liveUntil }, ...active.filter((r) => r.state === WebhookSecretState.LIVE)].sort(
      (a, b) => (b.credentialVersion ?? 0) - (a.credentialVersion ?? 0),
    );
    const isWithdrawn = (r: WebhookSecretVersionEntity) => withdrawn.has(r.credentialVersion ?? 0);
    const kept = live.filter((r) => !isWithdrawn(r));
    const retire = [
      ...kept.filter((r, i) => i >= this.options.maxLiveSecrets - 1 || (r.liveUntil?.getTime() ?? 0) <= now.getTime()),
      ...live.filter(isWithdrawn),
    ].sort((a, b) => (b.credentialVersion ?? 0) - (a.credentialVersion ?? 0));
    for (const r of retire) await this.rows.transition(r.id, WebhookSecretState.LIVE, { state: WebhookSecretState.RETIRED, updatedAt: now });
    const retired = retire.map((r) => r.credentialVersion ?? 0);
    return { liveUntil: retire.some((r) => r.id === current.id) ? now : liveUntil, retired };
  }
}
