import { Injectable } from '@nestjs/common';
import { CredentialStatus } from './credential-type';
import type { ExpiringCredentialRef, ExpiringScanQuery, LiveCredentialRef, LiveScanQuery } from './credential.types';
import { CredentialValidationError } from './errors/credential-errors';
import { CredentialRepository } from './persistence/credential.repository';

/**
 * For system jobs only (proactive OAuth refresh, expiry monitors): credentials of EVERY tenant. Kept
 * off the tenant-facing `CredentialsService` on purpose — it takes no OperationContext because no
 * tenant owns the scan; never expose it to a tenant-facing API.
 */
@Injectable()
export class CredentialExpiryScanner {
  constructor(private readonly rows: CredentialRepository) {}

  /**
   * Credentials whose expiry is before `before`, soonest first, keyset-paged by (expiresAt, id).
   * Metadata references only, never values.
   */
  async scanExpiringAcrossTenants(query: ExpiringScanQuery): Promise<ExpiringCredentialRef[]> {
    const limit = query.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new CredentialValidationError('limit must be an integer in 1..10000', 'limit');
    if (!(query.before instanceof Date) || Number.isNaN(query.before.getTime())) throw new CredentialValidationError('before must be a valid Date', 'before');
    return this.rows.scanExpiring({
      beforeMs: query.before.getTime(),
      type: query.type || undefined,
      statuses: query.statuses ?? [CredentialStatus.ACTIVE],
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
    return this.rows.scanLive({ statuses: query.statuses ?? [CredentialStatus.ACTIVE], changedBeforeMs: query.changedBefore?.getTime(), limit, afterId: query.afterId });
  }
}
