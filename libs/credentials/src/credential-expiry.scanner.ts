import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '@app/audit';
import { type Clock, foldUuid } from '@app/common';
import { CredentialCache } from './cache/credential-cache';
import { CredentialExpiryTransition, type ExpiryTransitionResult } from './credential-expiry.transition';
import { CredentialStatus, type CredentialTypeInput } from './credential-type';
import type { ExpiringCredentialRef, ExpiringScanQuery, LiveCredentialRef, LiveScanQuery } from './credential.types';
import { CREDENTIALS_CLOCK } from './credentials.constants';
import { CredentialValidationError } from './errors/credential-errors';
import { checkedStatuses, checkedType, UUID } from './internal/guards';
import { CredentialRepository } from './persistence/credential.repository';
import { CredentialScanRepository } from './persistence/credential-scan.repository';
import { CredentialsPersistence } from './persistence/credentials-persistence';
import { assertIdentifier } from './validation/identifiers';

/**
 * For system jobs only (proactive OAuth refresh, expiry monitors): credentials of EVERY tenant. Kept
 * off the tenant-facing `CredentialsService` on purpose — it takes no OperationContext because no
 * tenant owns the scan; never expose it to a tenant-facing API.
 */
@Injectable()
export class CredentialExpiryScanner {
  private readonly expiry: CredentialExpiryTransition;

  constructor(
    rows: CredentialRepository,
    private readonly scans: CredentialScanRepository,
    persistence: CredentialsPersistence,
    audit: AuditService,
    cache: CredentialCache,
    @Inject(CREDENTIALS_CLOCK) clock: Clock,
  ) {
    this.expiry = new CredentialExpiryTransition({ runner: persistence.runner, outbox: persistence.outbox, rows, audit, cache, clock });
  }

  /**
   * The expiry transition a refused read also makes (see CredentialExpiryTransition): an `active`
   * credential past its expiry becomes `expired` with one `credential.expired` event, once per
   * credential version whoever comes first. `marked: false` with status `expired` means a read (or
   * another replica) already did it. Joins the caller's transaction, so a job can commit its own
   * bookkeeping with it. `job` names the system actor.
   */
  async markExpired(ref: { tenantId: string; id: string }, job: string): Promise<ExpiryTransitionResult> {
    assertIdentifier(ref?.tenantId, 'tenantId');
    if (typeof ref.id !== 'string' || !UUID.test(ref.id)) throw new CredentialValidationError('id must be a credential id (a UUID)', 'id');
    assertIdentifier(job, 'job');
    return this.expiry.expire(ref.tenantId, foldUuid(ref.id), job);
  }

  /**
   * Credentials whose expiry is before `before`, soonest first, keyset-paged by (expiresAt, id).
   * Metadata references only, never values.
   */
  async scanExpiringAcrossTenants(query: ExpiringScanQuery): Promise<ExpiringCredentialRef[]> {
    const limit = query.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new CredentialValidationError('limit must be an integer in 1..10000', 'limit');
    if (!(query.before instanceof Date) || Number.isNaN(query.before.getTime())) throw new CredentialValidationError('before must be a valid Date', 'before');
    return this.scans.scanExpiring({
      beforeMs: query.before.getTime(),
      // null is no filter too, as before the type was checked here.
      type: query.type == null ? undefined : checkedType(query.type),
      statuses: checkedStatuses(query.statuses, [CredentialStatus.ACTIVE]),
      limit,
      after: query.after ? { expiresAtMs: query.after.expiresAt.getTime(), id: query.after.id } : undefined,
    });
  }

  /** Live credentials of every tenant, by id (keyset-paged), for rotation checks. References only, never values. */
  async scanLiveAcrossTenants(query: LiveScanQuery = {}): Promise<LiveCredentialRef[]> {
    const limit = query.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new CredentialValidationError('limit must be an integer in 1..10000', 'limit');
    if (query.changedBefore !== undefined && (!(query.changedBefore instanceof Date) || Number.isNaN(query.changedBefore.getTime()))) {
      throw new CredentialValidationError('changedBefore must be a valid Date', 'changedBefore');
    }
    return this.scans.scanLive({ statuses: checkedStatuses(query.statuses, [CredentialStatus.ACTIVE]), changedBeforeMs: query.changedBefore?.getTime(), limit, afterId: query.afterId });
  }

  /** How many credentials of every tenant, not deleted, of `type` have a connection id starting with `connectionIdPrefix` (for metrics). */
  async countLiveAcrossTenants(query: { type: CredentialTypeInput; connectionIdPrefix: string }): Promise<number> {
    const type = checkedType(query?.type);
    // As a connection id is (any prefix of one is too): the count's index range relies on its ASCII characters.
    assertIdentifier(query.connectionIdPrefix, 'connectionIdPrefix');
    return this.scans.countLiveByConnectionPrefix(type, query.connectionIdPrefix);
  }
}
