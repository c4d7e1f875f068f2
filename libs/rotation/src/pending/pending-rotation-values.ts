import { Injectable, Logger } from '@nestjs/common';
import { CredentialVaultError, describeError, ErrorSeverity, type OperationContext } from '@app/common';
import { CredentialExpiryScanner, CredentialNotFoundError, CredentialRevokedError, CredentialsService, CredentialStatus, CredentialType, INTERNAL_CONNECTION_PREFIXES, ValueStoreKind, type CredentialMetadata } from '@app/credentials';
import type { MintedValue } from '../handlers/rotation-handler';

/** Pseudo connection of a credential's pending rotation value (one per credential), and its tags (metadata only). */
export const PENDING_ROTATION_CONNECTION_PREFIX = INTERNAL_CONNECTION_PREFIXES.pendingRotationValue;
const TAGS = { FOR: 'cv.rotation.minted-for', BASED_ON: 'cv.rotation.minted-based-on', EXPIRES_AT: 'cv.rotation.minted-expires-at' } as const;

/** What an operator sees of a pending rotation value: references only. */
export interface PendingRotation {
  credentialId: string;
  /** The `custom_secret` credential (envelope store) holding the value. */
  pendingCredentialId: string;
  /** The version the value was minted to replace; it is written only while this is still the current one. */
  basedOnVersion: number;
  since: Date;
}

/**
 * A value a RotationHandler minted. The provider may hold it as live from the mint on, so it is kept before its vault
 * write — envelope-encrypted, as a `custom_secret` of the same integration, connection `rotation-pending.<credential
 * id>` — and dropped once the new version is committed: a crash or a failed write in between leaves it, and the next
 * rotation writes it instead of minting again (the crash-safe write sequence: durable first, then the write, then the
 * clean-up; the oauth-refresh lib keeps a rotated refresh token the same way). Callers hold the credential's rotation lock.
 */
@Injectable()
export class PendingRotationValues {
  private readonly logger = new Logger(PendingRotationValues.name);

  constructor(
    private readonly credentials: CredentialsService,
    private readonly scanner: CredentialExpiryScanner,
  ) {}

  /** Pending rotation values of every tenant (for metrics): one count query. */
  countAcrossTenants(): Promise<number> {
    return this.scanner.countLiveAcrossTenants({ type: CredentialType.CUSTOM_SECRET, connectionIdPrefix: PENDING_ROTATION_CONNECTION_PREFIX });
  }

  async find(ctx: OperationContext, meta: Pick<CredentialMetadata, 'id' | 'integrationId'>): Promise<CredentialMetadata | undefined> {
    const page = await this.credentials.list(ctx, { integrationId: meta.integrationId, connectionId: connectionOf(meta.id), type: CredentialType.CUSTOM_SECRET, includeInternal: true, limit: 5 });
    return page.items.find((m) => m.tags[TAGS.FOR] === meta.id);
  }

  /** The kept value when it still replaces the current version; a stale or revoked one is dropped. */
  async take(ctx: OperationContext, meta: CredentialMetadata, pending: CredentialMetadata): Promise<MintedValue | undefined> {
    if (Number(pending.tags[TAGS.BASED_ON]) !== meta.version || pending.status === CredentialStatus.REVOKED) {
      await this.drop(ctx, pending);
      return undefined;
    }
    // A read that fails (the data key's vault unreachable) fails the rotation: minting again would lose this value.
    const { value } = await this.credentials.get(ctx, pending.id);
    const expires = pending.tags[TAGS.EXPIRES_AT];
    return { value, ...(expires === undefined ? {} : { expiresAt: expires === 'null' ? null : new Date(expires) }) };
  }

  /**
   * Keeps a freshly minted value, before its write. A failure to keep it (the tenant has no envelope data key yet and
   * the vault refuses creating one, say) is logged and the rotation goes on without it, as before: the value is then
   * lost if the process dies or the write fails before the commit.
   */
  async keep(ctx: OperationContext, meta: CredentialMetadata, minted: MintedValue): Promise<CredentialMetadata | undefined> {
    try {
      const tags: Record<string, string> = { [TAGS.FOR]: meta.id, [TAGS.BASED_ON]: String(meta.version) };
      if (minted.expiresAt !== undefined) tags[TAGS.EXPIRES_AT] = minted.expiresAt === null ? 'null' : minted.expiresAt.toISOString();
      return await this.credentials.store(ctx, { integrationId: meta.integrationId, connectionId: connectionOf(meta.id), type: CredentialType.CUSTOM_SECRET, value: minted.value, tags, valueStore: ValueStoreKind.ENVELOPE }, { internal: true });
    } catch (e) {
      this.logger.warn(`could not keep the value the handler of ${whereOf(ctx, meta)} minted as its pending rotation value (${describeError(e)}); writing it without: a crash or a failed write before the commit loses it`);
      return undefined;
    }
  }

  /**
   * Re-checks the credential once its minted value is kept: deleted, or revoked since the rotation loaded it (`meta`),
   * the kept value is deleted and the rotation refused (CredentialNotFoundError, CredentialRevokedError) — writing it
   * would make a revoked credential active again. The change's outbox event may have been handled before the keep
   * committed (PendingRotationCleanup then found nothing); a change committed after the keep finds it there.
   */
  async discardIfGone(ctx: OperationContext, meta: CredentialMetadata, kept: CredentialMetadata): Promise<void> {
    let refusal: Error;
    try {
      const now = await this.credentials.getMetadata(ctx, meta.id);
      if (now.status !== CredentialStatus.REVOKED || meta.status === CredentialStatus.REVOKED) return;
      refusal = new CredentialRevokedError(meta.id);
    } catch (e) {
      if (!(e instanceof CredentialNotFoundError)) throw e;
      refusal = e;
    }
    await this.discard(ctx, kept);
    this.logger.warn(`${whereOf(ctx, meta)} was ${refusal instanceof CredentialNotFoundError ? 'deleted' : 'revoked'} during its rotation: the value its handler minted is discarded, nothing written`);
    throw refusal;
  }

  /**
   * After the write of a kept value failed: it stays for the next rotation, unless the failure says the write itself
   * was wrong (a CLIENT error: a conflict, a value the vault rejects, the credential gone), which the same value would
   * meet again — then it is dropped.
   */
  async afterFailedWrite(ctx: OperationContext, meta: CredentialMetadata, kept: CredentialMetadata | undefined, error: unknown): Promise<void> {
    if (error instanceof CredentialVaultError && error.severity === ErrorSeverity.CLIENT) {
      if (kept) await this.drop(ctx, kept);
      return;
    }
    const failed = `the write of ${whereOf(ctx, meta)}'s rotated value failed (${describeError(error)})`;
    if (kept) this.logger.error(`${failed}; the value its handler minted is kept as its pending rotation value (credential ${kept.id}) and written by the next attempt`);
    else this.logger.error(`${failed} and the value its handler minted was not kept: it is lost, the provider may hold it`);
  }

  /** Best effort: a leftover is stale (its version check fails) and dropped by the next rotation. */
  async drop(ctx: OperationContext, pending: CredentialMetadata): Promise<void> {
    await this.discard(ctx, pending).catch((e: unknown) => this.logger.warn(`could not delete the pending rotation value ${pending.id}: ${describeError(e)}`));
  }

  /** Deletes it (value and metadata); gone already is done. Other failures throw. */
  async discard(ctx: OperationContext, pending: CredentialMetadata): Promise<void> {
    try {
      await this.credentials.delete(ctx, pending.id, { expectedVersion: pending.rowVersion });
    } catch (e) {
      if (!(e instanceof CredentialNotFoundError)) throw e;
    }
  }

  toReport(meta: Pick<CredentialMetadata, 'id'>, pending: CredentialMetadata): PendingRotation {
    return { credentialId: meta.id, pendingCredentialId: pending.id, basedOnVersion: Number(pending.tags[TAGS.BASED_ON]), since: pending.createdAt };
  }
}

function whereOf(ctx: OperationContext, meta: Pick<CredentialMetadata, 'id'>): string {
  return `credential ${meta.id} (tenant ${ctx.tenantId})`;
}

function connectionOf(credentialId: string): string {
  return `${PENDING_ROTATION_CONNECTION_PREFIX}${credentialId}`;
}
