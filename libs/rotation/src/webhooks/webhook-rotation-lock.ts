import { Inject, Injectable, Logger } from '@nestjs/common';
import { type AuditActionName, AuditService } from '@app/audit';
import { DistributedLock, LockTimeoutError, prefixedLockKey, type OperationContext } from '@app/common';
import { CredentialNotFoundError, CredentialRevokedError, CredentialsService, CredentialStatus, CredentialType, type CredentialMetadata } from '@app/credentials';
import { auditRefusal } from '../internal/audit-failure';
import { NotAWebhookSecretError, WebhookRotationInProgressError } from './webhook-secret.errors';
import type { ResolvedWebhookSecretsOptions } from './webhook-secrets.options';
import { WEBHOOK_SECRETS_LOCK, WEBHOOK_SECRETS_OPTIONS } from './webhook-secrets.tokens';

/**
 * Who asks for a rotation step. A caller's id its tenant does not have is a refused change, audited (denied,
 * NOT_FOUND) as the Credentials lib audits a change of one; the job's is a deleted credential whose rows it then
 * forgets — bookkeeping, not audited (a tenant deleting many would otherwise trip the job actor's failure counters).
 * The job's other refusals (a revoked credential, another holding the lock) are not audited either: its run summary
 * counts them, and its next run tries again.
 */
export type WebhookRotationCaller = 'caller' | 'job';

/** The change a refusal is audited as, and for whom. */
export interface RotationAsk {
  action: AuditActionName;
  by: WebhookRotationCaller;
}

/**
 * One rotation step of a credential at a time across replicas (`credentialRotation` lock, shared with the
 * RotationService), and the credential a step works on; a refused step is audited as any refused change.
 */
@Injectable()
export class WebhookRotationLock {
  // The rotation's log lines keep one context.
  private readonly logger = new Logger('WebhookSecretRotator');

  constructor(
    private readonly credentials: CredentialsService,
    private readonly audit: AuditService,
    @Inject(WEBHOOK_SECRETS_LOCK) private readonly lock: DistributedLock,
    @Inject(WEBHOOK_SECRETS_OPTIONS) private readonly options: ResolvedWebhookSecretsOptions,
  ) {}

  /**
   * The lock is keyed by the id alone, so the id is looked up in the caller's tenant first: one it does not have is
   * NOT_FOUND at once (audited, see `load`) — another tenant never takes, nor waits on, a credential's lock.
   */
  async locked<T>(ctx: OperationContext, asked: RotationAsk, credentialId: string, work: () => Promise<T>): Promise<T> {
    await this.load(ctx, credentialId, asked);
    const result = await this.lock.tryRun(prefixedLockKey('credentialRotation', credentialId), work);
    if (!result.acquired) throw await this.inProgress(ctx, asked, credentialId);
    return result.value;
  }

  /**
   * As `locked`, but waits up to `waitMs` (the `stageLockWaitMs` option) for the holder (a stage takes well under a second).
   * Without `refusal` (the repair of a superseded push, audited as that), a lock still held is not audited here; with
   * it, the id is looked up in the caller's tenant before the wait, as in `locked`.
   */
  async lockedWaiting<T>(credentialId: string, refusal: { ctx: OperationContext; asked: RotationAsk } | null, work: () => Promise<T>, waitMs = this.options.stageLockWaitMs): Promise<T> {
    if (refusal) await this.load(refusal.ctx, credentialId, refusal.asked);
    let began = false;
    const step = () => ((began = true), work());
    try {
      return await this.lock.run(prefixedLockKey('credentialRotation', credentialId), step, { timeoutMs: waitMs });
    } catch (e) {
      // The step's own LockTimeoutError (say the SQLite transaction gate's) is its failure, not a refusal of the lock.
      if (began || !(e instanceof LockTimeoutError)) throw e;
      // Still held (an automatic rotation's push to a slow provider): a rotation is in progress indeed.
      throw refusal ? await this.inProgress(refusal.ctx, refusal.asked, credentialId) : new WebhookRotationInProgressError(credentialId);
    }
  }

  /** The credential a step changes; a caller's unknown id is audited (see WebhookRotationCaller). */
  async load(ctx: OperationContext, credentialId: string, asked?: RotationAsk): Promise<CredentialMetadata> {
    try {
      return await this.credentials.getMetadata(ctx, credentialId);
    } catch (e) {
      if (asked?.by === 'caller' && e instanceof CredentialNotFoundError) await auditRefusal(this.audit, this.logger, { action: asked.action, ctx, credentialId, error: e });
      throw e;
    }
  }

  /** A webhook secret (a step of any other credential is refused, audited as `refused` says). */
  async webhookSecret(ctx: OperationContext, credentialId: string, asked?: RotationAsk): Promise<CredentialMetadata> {
    const meta = await this.load(ctx, credentialId, asked);
    if (meta.type !== CredentialType.WEBHOOK_SECRET) throw await this.refused(ctx, asked, meta, new NotAWebhookSecretError(credentialId));
    return meta;
  }

  /** A webhook secret that may rotate. */
  async rotatable(ctx: OperationContext, credentialId: string, asked?: RotationAsk): Promise<CredentialMetadata> {
    const meta = await this.webhookSecret(ctx, credentialId, asked);
    // CredentialsService.rotate makes a credential active again: a rotation must never un-revoke.
    if (meta.status === CredentialStatus.REVOKED) throw await this.refused(ctx, asked, meta, new CredentialRevokedError(credentialId));
    return meta;
  }

  /**
   * `error`, a caller's step refused before any write, audited once as the RotationService audits its refusals
   * (`details.version`; denied for a revoked credential, else failure). The job's are its bookkeeping, not audited
   * (see WebhookRotationCaller): every failure or denied row counts toward its actor's (and the credential's) failure
   * threshold, and it meets a revoked credential every run, a lock another holds whenever a caller's step of that
   * credential runs on any replica. Without `asked` (the repair of a superseded push, audited as that), not audited.
   */
  async refused<E>(ctx: OperationContext, asked: RotationAsk | undefined, meta: Pick<CredentialMetadata, 'id' | 'version'>, error: E): Promise<E> {
    if (asked?.by === 'caller') await auditRefusal(this.audit, this.logger, { action: asked.action, ctx, credentialId: meta.id, error, details: { version: meta.version } });
    return error;
  }

  /**
   * The refusal of a step while another holds the credential's lock, audited once here for a caller (failure, 3122,
   * `details.version`). An id the caller's tenant does not have (deleted since the look before the lock) is NOT_FOUND
   * (see `load`), never IN_PROGRESS, which would tell that it exists and rotates. Only a refusal before the step
   * began: the same code from a promotion refused inside the credential's write is the Credentials lib's row.
   */
  private async inProgress(ctx: OperationContext, asked: RotationAsk, credentialId: string): Promise<WebhookRotationInProgressError> {
    const meta = await this.load(ctx, credentialId, asked);
    return this.refused(ctx, asked, meta, new WebhookRotationInProgressError(credentialId));
  }
}
