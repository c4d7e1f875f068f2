import { Inject, Injectable, Logger } from '@nestjs/common';
import { KeyVaultErrorCode, KeyVaultProvider, isKeyVaultError, type SecretProperties } from '@app/key-vault';
import { CredentialType, ValueStoreKind } from '../credential-type';
import { CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import type { ResolvedCredentialsOptions } from '../credentials.options';
import { CredentialGenerationsExhaustedError, CredentialValueMissingError } from '../errors/credential-errors';
import { MAX_GENERATION, credentialSecretGeneration, credentialSecretName } from '../naming/vault-secret-name';
import type { CredentialValueStore, ValueOwner, ValuePointer, ValueReadOptions, ValueWriteRequest } from './credential-value-store';

/** The instants the Azure SDK can send (32-bit seconds: 1901-12-13T20:45:52Z to 2038-01-19T03:14:07Z). */
const MIN_SDK_DATE_MS = -2_147_483_648_000;
const MAX_SDK_DATE_MS = 2_147_483_647_000;

/** How many soft-deleted generation names a store() skips before giving up. */
const MAX_DELETED_GENERATION_SKIPS = 50;

/** The tag naming the credential a version was written for (set by `write`, with the other `cv-*` tags). */
export const CREDENTIAL_TAG = 'cv-credential';

const PEM_TYPES = new Set([CredentialType.CLIENT_CERTIFICATE, CredentialType.CLIENT_PRIVATE_KEY]);

/**
 * One Key Vault secret per credential (per generation); each rotation is a new secret version whose
 * id is recorded in cv_credential_versions.
 *
 * Re-creating a credential whose secret name is soft-deleted (409 ObjectIsDeletedButRecoverable) moves
 * on to the next generation name instead of recovering the old secret: recovering would bring back
 * every old version of the deleted value (readable by version id and included in backups) and needs a
 * long-running recover call on the write path; a fresh name leaves the deleted one to expire or be
 * purged under the vault's retention policy.
 */
@Injectable()
export class VaultValueStore implements CredentialValueStore {
  readonly kind = ValueStoreKind.VAULT;
  private readonly logger = new Logger(VaultValueStore.name);

  constructor(
    private readonly vault: KeyVaultProvider,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) private readonly options: ResolvedCredentialsOptions,
  ) {}

  async write(request: ValueWriteRequest): Promise<ValuePointer> {
    let generation = request.vaultGeneration;
    if (request.versionsInGeneration >= this.options.vault.maxVersionsPerGeneration) {
      generation++;
      this.logger.log(`credential ${request.credentialId}: rolling over to secret generation ${generation}`);
    }
    // Past the last name (a rollover, or a re-store of a slot that used it): refused naming the credential.
    if (generation > MAX_GENERATION) throw new CredentialGenerationsExhaustedError(generation, MAX_GENERATION, request.credentialId);
    for (let skips = 0; ; skips++) {
      const name = credentialSecretName(request, generation, this.options.vault.namePrefix);
      try {
        const secret = await this.vault.setSecret(name, request.value, {
          contentType: PEM_TYPES.has(request.type) ? 'application/x-pem-file' : 'text/plain',
          tags: {
            'cv-tenant': request.tenantId,
            'cv-integration': request.integrationId,
            'cv-connection': request.connectionId,
            'cv-type': request.type,
            [CREDENTIAL_TAG]: request.credentialId,
            'cv-version': String(request.version),
          },
          // Informational only (Key Vault serves a secret past its exp); the service enforces expiry from its own
          // metadata, to the millisecond (the vault keeps whole seconds: @app/key-vault rounds it down). The SDK sends
          // 32-bit seconds, so a later date (long-lived certificates) would wrap to before 1970, and one before 1901 to
          // a later date (the key-vault lib refuses both): leave it off rather than record a wrong one.
          expiresOn: request.expiresAt && request.expiresAt.getTime() >= MIN_SDK_DATE_MS && request.expiresAt.getTime() <= MAX_SDK_DATE_MS ? request.expiresAt : undefined,
        }, { signal: request.signal });
        return { vaultSecretName: name, vaultSecretVersion: secret.properties.version, vaultGeneration: generation };
      } catch (e) {
        if (isKeyVaultError(e, KeyVaultErrorCode.DELETED_BUT_RECOVERABLE) && skips < MAX_DELETED_GENERATION_SKIPS && generation < MAX_GENERATION) {
          this.logger.log(`credential ${request.credentialId}: secret generation ${generation} is soft-deleted, using the next one`);
          generation++;
          continue;
        }
        throw e;
      }
    }
  }

  async read(owner: ValueOwner, pointer: ValuePointer, options: ValueReadOptions = {}): Promise<string> {
    if (!pointer.vaultSecretName || !pointer.vaultSecretVersion) {
      throw new CredentialValueMissingError(`credential ${owner.credentialId}: version has no vault pointer`);
    }
    try {
      const secret = await this.vault.getSecret(pointer.vaultSecretName, pointer.vaultSecretVersion, { signal: options.signal });
      return secret.value;
    } catch (e) {
      if (isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND)) {
        // Not the secret's name: it carries the tenant, and this message reaches the client and the logs. The generation is
        // the name's own (a version row records the name, not the generation; a store may have skipped soft-deleted ones).
        const generation = credentialSecretGeneration(pointer.vaultSecretName);
        const secret = generation === undefined ? 'the vault secret' : `the vault secret of generation ${generation}`;
        throw new CredentialValueMissingError(`credential ${owner.credentialId}: ${secret} no longer has this version`, { cause: e });
      }
      throw e;
    }
  }

  async discardUnreferenced(_owner: ValueOwner, pointer: ValuePointer): Promise<void> {
    // Key Vault cannot delete one version: disabled, it is never served (and goes with the secret's delete).
    if (pointer.vaultSecretName && pointer.vaultSecretVersion) {
      await this.vault.updateSecretProperties(pointer.vaultSecretName, pointer.vaultSecretVersion, { enabled: false });
    }
  }

  /**
   * The secret names the credential's values may be in: those its version rows name, its current generation's, and the
   * next one's (a write that rolled over and crashed before committing left its version there).
   */
  secretNamesOf(owner: ValueOwner, generation: number, recorded: Iterable<string | null | undefined>): string[] {
    const names = new Set<string>();
    for (const n of recorded) if (n) names.add(n);
    for (const g of [generation, generation + 1]) if (g <= MAX_GENERATION) names.add(credentialSecretName(owner, g, this.options.vault.namePrefix));
    return [...names];
  }

  /**
   * The enabled versions of the secret `name` that this store wrote (they carry the `cv-credential` tag), listed across
   * all pages (`nextLink`, empty pages included; each call through the key-vault lib's resilience, which honours 429
   * Retry-After). A name the vault does not know (or has soft-deleted) has none.
   */
  async enabledVersions(name: string): Promise<SecretProperties[]> {
    const out: SecretProperties[] = [];
    for await (const v of this.vault.listAllSecretVersions(name)) if (v.enabled && v.tags[CREDENTIAL_TAG] !== undefined) out.push(v);
    return out;
  }

  /**
   * Disables these versions of the secret `name`, one call each. Never a delete (Key Vault cannot delete a version):
   * disabled, a version is never served, and stays in the secret's history and backups.
   */
  async disable(name: string, versions: readonly SecretProperties[]): Promise<void> {
    for (const v of versions) await this.vault.updateSecretProperties(name, v.version, { enabled: false });
  }

  async discardInTransaction(_owner: ValueOwner): Promise<void> {
    // Nothing in the database: the vault side of a delete is `VaultValueDeletion`'s (an outbox event of the transaction).
  }
}
