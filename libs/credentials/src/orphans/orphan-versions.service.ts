import { Inject, Injectable, Logger } from '@nestjs/common';
import { metrics as otelMetrics, type Counter } from '@opentelemetry/api';
import { AuditResult, AuditService } from '@app/audit';
import { Clock, describeError, DistributedLock, isVaultRefusal, LOCK_KEYS, systemContext } from '@app/common';
import { KeyVaultProvider, type SecretProperties } from '@app/key-vault';
import { CredentialsConfigurationError } from '../errors/credential-errors';
import { CREDENTIALS_CLOCK, CREDENTIALS_LOCK, CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import type { ResolvedCredentialsOptions } from '../credentials.options';
import { CredentialVersionRepository, vaultPointerKey } from '../persistence/credential-version.repository';
import { CREDENTIAL_TAG, VaultValueStore } from '../stores/vault-value-store';

/** The job's name (ScheduledJobs, logs, the `job` label of the job metrics). */
export const ORPHAN_VERSIONS_JOB = 'credential-orphan-versions';
/** The audit action of the versions one run disabled, one row per credential (tenant, credential id, version ids; never a value). */
export const ORPHAN_VERSIONS_AUDIT_ACTION = 'orphan_versions_disabled';
/** Its actor: `system:orphan-versions`. */
const ACTOR_JOB = 'orphan-versions';
/** Key Vault's largest page. */
const PAGE = 25;

/** What one run did. */
export interface OrphanVersionsResult {
  /** False: another replica (or run) held the job's lock; nothing ran here. */
  acquired: boolean;
  /** Secrets of the vault this run listed (at most `maxSecretsPerRun`). */
  secrets: number;
  /** Orphan versions disabled. */
  disabled: number;
  /** Secrets whose check failed (logged; looked at again on a later pass). */
  failed: number;
  /** The run reached the end of the vault's list: the next one starts from the beginning. */
  passComplete: boolean;
}

/**
 * The orphan-versions job's work. An orphan is a version of a credential secret that this lib wrote (tag
 * `cv-credential`), is enabled, that no `cv_credential_versions` row of the credential it names references, and that
 * the vault created more than `orphanVersions.graceMs` ago. Such a version holds a value nothing serves: the write that
 * made it crashed between its vault write and its commit, or failed and could not discard it. A write commits within
 * `VALUE_COMMIT_DEADLINE_MS` of starting its vault write or not at all (its transaction checks last), and the grace
 * period is at least three times that, so a version a live write on any replica may still commit is never one.
 * A referenced version is never touched (rollback and the versions API need them), and nothing is ever deleted.
 *
 * Bounded per run: it lists at most `maxSecretsPerRun` secrets of the vault (pages of 25, `nextLink`) and goes on from
 * there next run (this process's cursor; another replica, or a restart, starts from the beginning). Each vault call
 * goes through the key-vault lib's resilience (retries honouring 429 Retry-After, its bulkhead), one at a time.
 * Runs under `LOCK_KEYS.credentialOrphanVersions`: one replica at a time, whoever calls it (the job, the CLI, a test).
 */
@Injectable()
export class CredentialOrphanVersions {
  private readonly logger = new Logger(CredentialOrphanVersions.name);
  private readonly disabledCounter: Counter;
  /** Where the next run goes on in the vault's list of secrets (undefined: from the beginning). */
  private cursor?: string;
  private total = 0;

  constructor(
    private readonly vault: KeyVaultProvider,
    private readonly store: VaultValueStore,
    private readonly versions: CredentialVersionRepository,
    private readonly audit: AuditService,
    @Inject(CREDENTIALS_LOCK) private readonly lock: DistributedLock | null,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) private readonly options: ResolvedCredentialsOptions,
  ) {
    this.disabledCounter = otelMetrics
      .getMeter('credential-vault.credentials')
      .createCounter('credentials.orphan_versions.disabled', { description: 'Orphan Key Vault secret versions (values no metadata references) the orphan-versions job disabled' });
  }

  /** Orphan versions disabled by this process since it started. */
  disabledTotal(): number {
    return this.total;
  }

  /** Throws `CredentialsConfigurationError` when the job cannot take its lock (no DistributedLock, no DataSource). */
  lockOrThrow(): DistributedLock {
    if (this.lock) return this.lock;
    throw new CredentialsConfigurationError('The orphan-versions job needs a DistributedLock provider or a TypeORM DataSource (TypeOrmModule.forRoot) in the host');
  }

  /**
   * One run, under `LOCK_KEYS.credentialOrphanVersions`. Rejects with `LockLostError` (LOCK_LOST) when the lock's
   * session ended meanwhile: the secret in flight was swept, no other was started (the next run starts over).
   */
  async runOnce(): Promise<OrphanVersionsResult> {
    const result = await this.lockOrThrow().tryRun(LOCK_KEYS.credentialOrphanVersions, (held) => this.work(held));
    return result.acquired ? result.value : { acquired: false, secrets: 0, disabled: 0, failed: 0, passComplete: false };
  }

  private async work(held: AbortSignal): Promise<OrphanVersionsResult> {
    const { graceMs, maxSecretsPerRun } = this.options.orphanVersions;
    const createdBefore = this.clock.nowMs() - graceMs;
    const prefix = `${this.options.vault.namePrefix}--`.toLowerCase();
    const out: OrphanVersionsResult = { acquired: true, secrets: 0, disabled: 0, failed: 0, passComplete: false };
    let token = this.cursor;
    try {
      while (out.secrets < maxSecretsPerRun) {
        held.throwIfAborted();
        const page = await this.vault.listSecrets({ maxPageSize: Math.min(PAGE, maxSecretsPerRun - out.secrets), continuationToken: token });
        for (const secret of page.items) {
          // Unlocked, this run could disable and audit the same orphans as the replica that took the lock.
          held.throwIfAborted();
          out.secrets++;
          // Credential secrets only (`<prefix>--…`); the tags of each version decide the rest.
          if (!secret.name.toLowerCase().startsWith(prefix)) continue;
          try {
            out.disabled += await this.sweep(secret.name, createdBefore);
          } catch (e) {
            // A permission the host lacks refuses every secret alike: the run fails once, not with a warning per secret.
            if (isVaultRefusal(e)) throw e;
            out.failed++;
            this.logger.warn(`orphan versions: the check of a credential secret failed (looked at again next pass): ${describeError(e)}`);
          }
        }
        token = page.continuationToken;
        if (!token) {
          out.passComplete = true;
          break;
        }
      }
      this.cursor = token;
    } catch (e) {
      // A token that stopped working, a vault outage or a lost lock: the next run starts over (a swept secret has no
      // enabled orphan left to find again).
      this.cursor = undefined;
      throw e;
    }
    if (out.disabled || out.failed) {
      this.logger.log(`orphan versions: ${out.secrets} secrets looked at, ${out.disabled} orphan versions disabled, ${out.failed} failed${out.passComplete ? ' (pass complete)' : ''}`);
    }
    return out;
  }

  /** Disables the orphans of one secret; audits them per credential. Returns how many. */
  private async sweep(name: string, createdBefore: number): Promise<number> {
    const old = (await this.store.enabledVersions(name)).filter((v) => v.createdOn !== undefined && v.createdOn.getTime() <= createdBefore);
    const byCredential = new Map<string, SecretProperties[]>();
    for (const v of old) byCredential.set(v.tags[CREDENTIAL_TAG], [...(byCredential.get(v.tags[CREDENTIAL_TAG]) ?? []), v]);
    let disabled = 0;
    for (const [credentialId, candidates] of byCredential) {
      const referenced = await this.versions.vaultPointersOf(credentialId);
      const orphans = candidates.filter((v) => !referenced.has(vaultPointerKey(name, v.version)));
      if (orphans.length === 0) continue;
      await this.store.disable(name, orphans);
      disabled += orphans.length;
      this.total += orphans.length;
      this.disabledCounter.add(orphans.length);
      const tenantId = orphans[0].tags['cv-tenant'] ?? 'unknown';
      this.logger.log(`orphan versions: disabled ${orphans.length} version(s) of credential ${credentialId} (tenant ${tenantId}) that no metadata references`);
      await this.audit.record({
        action: ORPHAN_VERSIONS_AUDIT_ACTION,
        context: systemContext(tenantId, ACTOR_JOB),
        resource: credentialId,
        result: AuditResult.SUCCESS,
        details: { disabled: orphans.length, vaultVersions: orphans.map((v) => v.version), intendedVersions: orphans.map((v) => Number(v.tags['cv-version'] ?? 0)) },
      });
    }
    return disabled;
  }
}
