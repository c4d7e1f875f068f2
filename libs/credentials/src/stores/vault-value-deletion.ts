import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { describeError, type OutboxEvent, OutboxHandlerRegistrations } from '@app/common';
import { isKeyVaultError, KeyVaultErrorCode, KeyVaultProvider, type SecretProperties } from '@app/key-vault';
import { CredentialStatus, ValueStoreKind } from '../credential-type';
import type { CredentialEntity } from '../entities/credential.entity';
import { ownerOf } from '../internal/credential-view';
import { UUID } from '../internal/guards';
import { CredentialRepository } from '../persistence/credential.repository';
import { CredentialVersionRepository } from '../persistence/credential-version.repository';
import { CredentialsPersistence } from '../persistence/credentials-persistence';
import { undeliveredEvents, VaultOutageLog } from './vault-outage';
import { CREDENTIAL_TAG, VaultValueStore } from './vault-value-store';

/**
 * The outbox event of a delete's vault side (ids only: `{ credentialId }`, the tenant as the event's). Not a
 * `credential.*` event: it is this lib's own work, written whatever `emitEvents` says, and no listener's business.
 */
export const VAULT_VALUE_DELETION_EVENT = 'credentials.vault-values.delete';

/**
 * The vault side of a credential's delete: no readable value of a deleted credential is left at the vault.
 *
 * For each secret the credential's values may be in (the names its version rows record, and its current and next
 * generation's, where a write that crashed before its commit left its version), every enabled version that the
 * metadata references or that this lib wrote for the credential (tag `cv-credential`: the orphans) is disabled; then
 * the recorded names are soft-deleted — never before their versions are disabled, so a secret an operator recovers
 * within the vault's retention comes back with nothing readable. The next generation's name is only swept, never
 * deleted: a credential stored in the same slot after the delete writes there.
 *
 * Durable: `schedule` adds an outbox event in the delete's transaction; after the commit `runNow` does the work at
 * once (the delete returns with the vault done) and marks the event delivered. The outbox delivers the event at least
 * once, on any replica: a delivery in this process while runNow runs shares its run, and one of an event marked done
 * does nothing; else it does the work again — a repeat finds nothing enabled and the names deleted already — so a vault
 * failure, or a crash between the commit and the vault calls, is retried with the outbox's backoff until it is done.
 * While it is not, each failed attempt is a warning naming the credential — but while Key Vault is unreachable, the
 * outage is said once with the deletes waiting, then each minute (VaultOutageLog) — and `pending()` counts the deletes not done.
 *
 * A secret recovered at the vault while the delete waits for its deletion (an operator, within a few seconds of the
 * delete) ends the wait at once (the provider's DELETE_UNDONE) and is done, not a failure: one warning names the
 * credential and the secret, and nothing deletes it again. The guarantee — no readable value of a deleted credential at
 * the vault — holds there: its versions were disabled before the delete, and a recover brings a secret back with its
 * attributes (Azure's and the emulator's). The soft-delete is only the retention side, and a recovery is the operator's
 * retention decision (an investigation, say): deleting it again would undo it behind their back, and they could not
 * keep it without racing the outbox. The recovered secret is theirs to delete or purge. At least once still allows a
 * repeat that cannot know the delete was done — a crash (or a failed mark) between the vault calls and the event's
 * mark, another replica's delivery running alongside runNow, or the retry of a run that failed on another of the
 * credential's secrets — and it deletes a secret recovered in between again.
 *
 * Never a purge: purging is the vault operator's decision (soft-delete retention, purge protection); within the
 * retention a soft-deleted secret remains recoverable, with every version disabled.
 */
@Injectable()
export class VaultValueDeletion implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(VaultValueDeletion.name);
  private readonly outboxRegistrations = new OutboxHandlerRegistrations();
  /** The vault side of each delete running in this process, by credential id: runNow and the outbox's delivery share it. */
  private readonly running = new Map<string, Promise<void>>();
  private readonly unreachable = new VaultOutageLog(
    this.logger,
    {
      waiting: (n) => `the vault values of ${n === undefined ? 'deleted credentials' : `${n} deleted credential${n === 1 ? '' : 's'}`} wait to be deleted`,
      resumed: 'the vault values of deleted credentials are deleted again',
    },
    () => this.pending(),
  );

  constructor(
    private readonly persistence: CredentialsPersistence,
    private readonly rows: CredentialRepository,
    private readonly versions: CredentialVersionRepository,
    private readonly vaultStore: VaultValueStore,
    private readonly vault: KeyVaultProvider,
  ) {}

  onModuleInit(): void {
    // Also on replicas that never delete: they may dispatch another replica's events.
    this.outboxRegistrations.register(this.persistence.handlers, VAULT_VALUE_DELETION_EVENT, (event) => this.deliver(event));
  }

  onModuleDestroy(): void {
    this.outboxRegistrations.unregisterAll();
  }

  /**
   * In the delete's transaction: the vault side of deleting `row`, made durable (nothing for an envelope credential).
   * Returns the event's id, for `runNow`.
   */
  async schedule(row: CredentialEntity): Promise<string | undefined> {
    if (row.valueStore !== ValueStoreKind.VAULT) return undefined;
    return this.persistence.outbox.add({ name: VAULT_VALUE_DELETION_EVENT, tenantId: row.tenantId, payload: { credentialId: row.id } });
  }

  /**
   * After the delete's commit: the vault side now, and its event (`eventId`, from `schedule`) marked delivered once it is
   * done. A failure is left to the outbox (logged, never thrown: the delete is committed).
   */
  async runNow(row: CredentialEntity, eventId?: string): Promise<void> {
    if (row.valueStore !== ValueStoreKind.VAULT) return;
    try {
      await this.once(row, async () => {
        await this.deleteValues(row);
        // Its deliveries have nothing left to do; one that cannot tell (this mark failed) does it again, as at least once does.
        if (eventId) await this.persistence.outbox.markDelivered(eventId).catch((e: unknown) => this.logger.debug(`credential ${row.id}: its vault side is done, its event not marked (${describeError(e)}); delivered again`));
      });
    } catch (e) {
      this.logger.warn(`credential ${row.id}: its vault values are not deleted yet (${describeError(e)}); the outbox retries it`);
    }
  }

  /** Deletes whose vault side is not done yet (undelivered outbox events, every replica's). */
  async pending(): Promise<number> {
    return undeliveredEvents(this.persistence, VAULT_VALUE_DELETION_EVENT);
  }

  private async deliver(event: OutboxEvent): Promise<void> {
    const credentialId = event.payload.credentialId;
    if (!event.tenantId || typeof credentialId !== 'string') return;
    const row = await this.rows.findById(event.tenantId, credentialId);
    // Only a deleted credential's values go (nothing else writes this event; a row gone from the database has no names left).
    if (!row || row.status !== CredentialStatus.DELETED) return;
    try {
      // Done already when runNow (here or on another replica) marked the event: nothing is repeated over a recovery since.
      await this.once(row, async () => {
        if (!(await this.persistence.outbox.isDelivered(event.id))) await this.deleteValues(row);
      });
    } catch (e) {
      // The vault away: said once for every delete waiting, the event deferred (no warning per attempt, nor the dispatcher's).
      const deferred = await this.unreachable.deferral(e);
      if (deferred) throw deferred;
      this.logger.warn(`credential ${row.id}: its vault values are still not deleted (attempt ${event.attempts + 1}: ${describeError(e)}); retried with the outbox's backoff`);
      throw e;
    }
    this.unreachable.answered();
  }

  /** `work` for `row`, unless its vault side is running in this process already: then that run (its outcome too). */
  private once(row: CredentialEntity, work: () => Promise<void>): Promise<void> {
    const running = this.running.get(row.id);
    if (running) return running;
    const run = work().finally(() => this.running.delete(row.id));
    this.running.set(row.id, run);
    return run;
  }

  /** Idempotent: every enabled version of the credential disabled, then its recorded names soft-deleted. */
  private async deleteValues(row: CredentialEntity): Promise<void> {
    const versions = await this.versions.list(row.tenantId, row.id);
    const referenced = new Set<string>();
    const recorded = new Set<string>();
    for (const v of versions) {
      if (!v.vaultSecretName) continue;
      recorded.add(v.vaultSecretName);
      if (v.vaultSecretVersion) referenced.add(`${v.vaultSecretName}/${v.vaultSecretVersion}`);
    }
    const ofCredential = (name: string, v: SecretProperties) => v.tags[CREDENTIAL_TAG] === row.id || referenced.has(`${name}/${v.version}`);
    const others = new Map<string, Set<string>>(); // name -> ids of the other credentials with versions there
    for (const name of this.vaultStore.secretNamesOf(ownerOf(row), row.vaultGeneration, recorded)) {
      const mine: SecretProperties[] = [];
      for await (const v of this.vault.listAllSecretVersions(name)) {
        const owner = v.tags[CREDENTIAL_TAG];
        if (ofCredential(name, v)) {
          if (v.enabled) mine.push(v);
        } else if (owner !== undefined) others.set(name, (others.get(name) ?? new Set()).add(owner));
      }
      await this.vaultStore.disable(name, mine);
    }
    for (const name of recorded) {
      // Another credential writes here too and is not deleted (a store takes a generation past every one its slot used,
      // but rows written before it did could share a name): its values stay. Nothing of this credential is readable there.
      if (await this.holdsLiveOther(row.tenantId, others.get(name))) {
        this.logger.log(`credential ${row.id}: a secret it recorded also holds another credential's versions: its own are disabled, the secret is not deleted`);
        continue;
      }
      try {
        // Deleted already is the answer to a repeat (a crash before the event's mark), and being deleted that of a run
        // racing another replica's: answers taken as done below, not vault errors.
        await this.vault.deleteSecret(name, { notFoundExpected: true, beingDeletedExpected: true });
      } catch (e) {
        // Deleted already (an earlier attempt, another replica's delivery), or being deleted: done.
        if (isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND) || isKeyVaultError(e, KeyVaultErrorCode.OBJECT_BEING_DELETED)) continue;
        // Recovered at the vault while this delete waited for its deletion: the operator's call, left as it is (class comment).
        if (isKeyVaultError(e, KeyVaultErrorCode.DELETE_UNDONE)) {
          this.logger.warn(
            `credential ${row.id}: its secret ${name} was recovered at the vault while its delete completed; left live with every version of the credential disabled, not deleted again`,
          );
          continue;
        }
        throw e;
      }
    }
  }

  /** Whether one of these credentials (ids from `cv-credential` tags) is not deleted: live or revoked (an un-revoke re-enables). */
  private async holdsLiveOther(tenantId: string, ids: Set<string> | undefined): Promise<boolean> {
    for (const id of ids ?? []) {
      if (!UUID.test(id)) continue; // not a tag this lib wrote
      const other = await this.rows.findById(tenantId, id);
      if (other && other.status !== CredentialStatus.DELETED) return true;
    }
    return false;
  }
}
