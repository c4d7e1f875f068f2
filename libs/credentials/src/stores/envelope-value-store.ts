import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { Clock, describeError } from '@app/common';
import { ValueStoreKind } from '../credential-type';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import type { ResolvedCredentialsOptions } from '../credentials.options';
import { decryptEnvelope, encryptEnvelope } from '../crypto/envelope-cipher';
import { EnvelopeValueEntity } from '../entities/envelope-value.entity';
import { CredentialValueMissingError } from '../errors/credential-errors';
import { EnvelopeValueRepository } from '../persistence/envelope-value.repository';
import type { CredentialValueStore, ValueOwner, ValuePointer, ValueReadOptions, ValueWriteRequest } from './credential-value-store';
import { DataKeyService } from './data-key.service';

export interface ReencryptResult {
  /** Rows that were under an older data-key version and now use the current one. */
  reencrypted: number;
  /** Rows already under the current version. */
  alreadyCurrent: number;
  /** Rows that could not be re-encrypted (their key version unreadable, the ciphertext corrupt): the run went on. */
  failed: { credentialId: string; version: number; error: string }[];
  /**
   * When every replica will have learnt the tenant's current data key (its creation + `envelope.currentKeyRefreshMs`):
   * until then one may still seal a new value with an older version. Disable older versions only after a run that
   * ends with nothing failed and `settled: true`. Absent when the tenant has no envelope value.
   */
  settlesAt?: string;
  settled?: boolean;
}

/**
 * AES-256-GCM ciphertext rows in cv_envelope_values under a per-tenant data key kept in Key Vault
 * (a secret, or wrapped by a vault key with `envelope.keyEncryptionKey`).
 * Key Vault traffic stays flat however often tokens churn: one key fetch per tenant per process.
 */
@Injectable()
export class EnvelopeValueStore implements CredentialValueStore {
  readonly kind = ValueStoreKind.ENVELOPE;
  private readonly logger = new Logger(EnvelopeValueStore.name);

  constructor(
    private readonly values: EnvelopeValueRepository,
    private readonly keys: DataKeyService,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) private readonly options: ResolvedCredentialsOptions,
  ) {}

  async write(request: ValueWriteRequest): Promise<ValuePointer> {
    // The caller's signal: a data key still loading is left at once when it aborts (nothing written yet).
    const key = await this.keys.currentKey(request.tenantId, { signal: request.signal });
    const sealed = encryptEnvelope(key.key, request.value, {
      tenantId: request.tenantId,
      credentialId: request.credentialId,
      version: request.version,
    });
    const now = this.clock.now();
    const row: EnvelopeValueEntity = {
      id: randomUUID(),
      tenantId: request.tenantId,
      credentialId: request.credentialId,
      version: request.version,
      dataKeyName: key.name,
      dataKeyVersion: key.version,
      ...sealed,
      createdAt: now,
      updatedAt: now,
    };
    // Before the metadata transaction (in a transaction of its own unless the caller has one open):
    // an orphan row is never served, a committed pointer to a missing row would be.
    await this.values.insert(row);
    return { envelopeValueId: row.id };
  }

  async read(owner: ValueOwner, pointer: ValuePointer, options: ValueReadOptions = {}): Promise<string> {
    const row = pointer.envelopeValueId ? await this.values.find(owner.tenantId, pointer.envelopeValueId) : null;
    if (!row || row.credentialId !== owner.credentialId) {
      throw new CredentialValueMissingError(`credential ${owner.credentialId}: envelope value is missing`);
    }
    // Ask for the tenant's current key first: it is normally the one this row uses, so a cold
    // process makes ONE vault call per tenant (the latest version), not one for the row's version
    // plus one to learn the current version.
    // Read-only: the current key is not needed (no re-encryption), and loading it may create or re-wrap one.
    const reencrypt = this.options.envelope.reencryptOnRead && !options.readOnly;
    if (reencrypt) await this.keys.currentKey(row.tenantId, options);
    const key = await this.keys.keyVersion(row.dataKeyName, row.dataKeyVersion, row.tenantId, options);
    const value = decryptEnvelope(key, row, { tenantId: row.tenantId, credentialId: row.credentialId, version: row.version });
    if (reencrypt) {
      await this.reencryptIfStale(row, value).catch((e: Error) =>
        // The error's class and code only: a data key's name (in integrity errors) carries the tenant.
        this.logger.warn(`credential ${owner.credentialId}: lazy re-encryption failed: ${describeError(e)}`),
      );
    }
    return value;
  }

  async discardInTransaction(owner: ValueOwner): Promise<void> {
    // Crypto-shred with the metadata: once deleted, the ciphertext is gone in the same commit.
    await this.values.deleteOfCredential(owner.tenantId, owner.credentialId);
  }

  async discardUnreferenced(owner: ValueOwner, pointer: ValuePointer): Promise<void> {
    if (pointer.envelopeValueId) await this.values.deleteById(owner.tenantId, owner.credentialId, pointer.envelopeValueId);
  }

  /**
   * Re-encrypts every ciphertext of the tenant that is not under its current data key (run after
   * `DataKeyService.rotate`, or let reads do it lazily): once it reports nothing failed, the older key
   * versions can be disabled. Never loads all rows at once; a row that fails is counted and named (credential,
   * version, error class) and the run goes on. A tenant without envelope values gets no data key made.
   */
  async reencryptAll(tenantId: string, batchSize = 200): Promise<ReencryptResult> {
    const result: ReencryptResult = { reencrypted: 0, alreadyCurrent: 0, failed: [] };
    let afterId = '';
    for (;;) {
      const rows = await this.values.pageOfTenant(tenantId, afterId, batchSize);
      if (rows.length === 0) break;
      const current = await this.keys.currentKey(tenantId);
      Object.assign(result, this.keys.settling(current.createdOn));
      for (const row of rows) {
        if (row.dataKeyName === current.name && row.dataKeyVersion === current.version) {
          result.alreadyCurrent++;
          continue;
        }
        try {
          const key = await this.keys.keyVersion(row.dataKeyName, row.dataKeyVersion, row.tenantId);
          const value = decryptEnvelope(key, row, { tenantId: row.tenantId, credentialId: row.credentialId, version: row.version });
          if (await this.reencryptIfStale(row, value)) result.reencrypted++;
          else result.alreadyCurrent++;
        } catch (e) {
          result.failed.push({ credentialId: row.credentialId, version: row.version, error: describeError(e) });
        }
      }
      afterId = rows[rows.length - 1].id;
    }
    return result;
  }

  /** True when the row was rewritten under the current key. Compare-and-set on the old key version. */
  private async reencryptIfStale(row: EnvelopeValueEntity, value: string): Promise<boolean> {
    const current = await this.keys.currentKey(row.tenantId);
    if (row.dataKeyName === current.name && row.dataKeyVersion === current.version) return false;
    const sealed = encryptEnvelope(current.key, value, { tenantId: row.tenantId, credentialId: row.credentialId, version: row.version });
    return this.values.reseal(row.id, row.dataKeyVersion, { ...sealed, dataKeyName: current.name, dataKeyVersion: current.version, updatedAt: this.clock.now() });
  }
}
