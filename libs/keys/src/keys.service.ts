import { Inject, Injectable, type OnModuleDestroy, Optional } from '@nestjs/common';
import { AuditService } from '@app/audit';
import { Clock, DistributedLock, prefixedLockKey, type OperationContext } from '@app/common';
import { isKeyVaultError, KeyVaultErrorCode, KeyVaultKeysProvider, type VaultKey, type VaultKeyItem } from '@app/key-vault';
import { KeysError, KeysErrorCode } from './errors/keys.errors';
import { KeyOperationRunner } from './audit/key-operation-runner';
import { openKeyBackup, sealKeyBackup, notThisTenantsBackup } from './backup/key-backup-envelope';
import { KeyCache, type CachedKey } from './cache/key-cache';
import { KeyChangeFanOut } from './cache/key-change-fan-out';
import { KeyCryptography } from './crypto/key-cryptography';
import { KEYS_CLOCK, KEYS_LOCK, KEYS_RESOLVED_OPTIONS } from './keys.constants';
import type { ResolvedKeysOptions } from './keys.options';
import type {
  CreateKeyRequest,
  DecryptRequest,
  DecryptResult,
  DeletedKeyDetails,
  EncryptRequest,
  EncryptResult,
  KeyDetails,
  KeyPage,
  KeyPageRequest,
  KeyProperties,
  KeySummary,
  KeySelector,
  ListKeysRequest,
  SignRequest,
  SignResult,
  UnwrapKeyRequest,
  UnwrapKeyResult,
  UpdateKeyRequest,
  VerifyRequest,
  VerifyResult,
  WrapKeyRequest,
  WrapKeyResult,
} from './keys.types';
import { KeysMetrics } from './metrics/keys.metrics';
import { tenantKeyNameOf, tenantKeyScope, tenantKeyVaultName } from './naming/tenant-key-name';
import { decodeKeyPageCursor, keyPage, notThisListsToken } from './paging/key-page-cursor';
import {
  checkCreateKey,
  checkDates,
  checkEnabled,
  checkKeyOps,
  checkName,
  checkPageSize,
  checkTags,
  checkVersion,
} from './validation/key-request-checks';

/**
 * The vault refuses a continuation token it did not issue (another vault or list) before calling anything: a cursor
 * of ours carrying one is a bad `continuationToken` (the request's field), not an invalid vault request.
 */
const foreignToken =
  (vaultToken: string | undefined) =>
  (e: unknown): never => {
    if (vaultToken !== undefined && isKeyVaultError(e, KeyVaultErrorCode.INVALID_REQUEST)) throw notThisListsToken();
    throw e;
  };

/** How long a create waits for a concurrent create of the same name (one vault create and its retries). */
const CREATE_LOCK_TIMEOUT_MS = 60_000;

/** Vault pages one listKeys call reads at most while filtering for the tenant (bounded latency). */
const MAX_VAULT_PAGES_PER_LIST = 20;

/**
 * Tenant-scoped Key Vault keys: management (create, get, list, versions, update, rotate, delete,
 * recover, purge, backup, restore) and cryptography (sign, verify, encrypt, decrypt, wrap, unwrap).
 *
 * - Isolation: every name is mapped into the caller's tenant scope (`naming/tenant-key-name.ts`), so
 *   another tenant's key is a 404 like a missing one; lists only show the tenant's keys.
 * - Every use is audited (`audit/key-operation-runner.ts`: `key.<operation>`, resource `key:<name>`,
 *   details: version, algorithm — never plaintext, ciphertext, digest, signature or key material):
 *   management through `record` (fails the call when the row cannot be written), uses and reads
 *   through the buffered `recordRead`.
 * - Requests are checked before any vault call (`validation/key-request-checks.ts`); before a
 *   cryptographic call (`crypto/key-cryptography.ts`) the cached key (`cache/key-cache.ts`) is checked too (enabled,
 *   dates, key_ops, algorithm fits the key type and curve), so a refused request costs no vault transaction; verify
 *   runs locally from the public key by default (RSA; EC verifies in the vault).
 * - Other replicas: the key cache announces every change through the optional `KeyChangeFanOut` (the host binds it), which also
 *   drops here what other replicas change, and says when nothing cached may be trusted (`cache/key-cache.ts`).
 * - Vault failures surface as the gateway's `KeyVaultError` (1001..1016); the lib's own as `KeysError`.
 */
@Injectable()
export class KeysService implements OnModuleDestroy {
  private readonly cache: KeyCache;
  private readonly runner: KeyOperationRunner;
  private readonly crypto: KeyCryptography;

  constructor(
    private readonly vault: KeyVaultKeysProvider,
    audit: AuditService,
    metrics: KeysMetrics,
    @Inject(KEYS_CLOCK) clock: Clock,
    @Inject(KEYS_RESOLVED_OPTIONS) private readonly options: ResolvedKeysOptions,
    @Optional() @Inject(KEYS_LOCK) private readonly lock?: DistributedLock | null,
    @Optional() @Inject(KeyChangeFanOut) private readonly fanOut?: KeyChangeFanOut | null,
  ) {
    this.cache = new KeyCache(vault, clock, options, fanOut);
    this.runner = new KeyOperationRunner(audit, metrics);
    this.crypto = new KeyCryptography(vault, this.runner, clock, options, (ctx, selector) => this.fetchCached(ctx, selector));
  }

  onModuleDestroy(): void {
    this.cache.close();
  }

  // ---- management --------------------------------------------------------------------------

  async createKey(ctx: OperationContext, request: CreateKeyRequest): Promise<KeyDetails> {
    const req = request ?? ({} as CreateKeyRequest);
    const { keyOps, expiresOn, notBefore } = checkCreateKey(req);
    const details = { keyType: req.type, keySize: req.type === 'RSA' ? (req.size ?? 2048) : undefined, curve: req.type === 'EC' ? (req.curve ?? 'P-256') : undefined };
    return this.runner.managed(ctx, 'create', req.name, details, () => this.exclusiveCreate(this.vaultName(ctx, req.name), async (vaultName) => {
      // Key Vault's create adds a version to an existing key (of any type): a taken name is refused instead, as the
      // API says names are unique — under the name's lock, so that of creates racing on several replicas one wins.
      const existing = await this.vault.getKey(vaultName, undefined, { signal: ctx.signal, notFoundExpected: true }).catch((e: unknown) => {
        if (isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND)) return undefined;
        throw e;
      });
      if (existing) throw new KeysError(KeysErrorCode.KEY_ALREADY_EXISTS, 'a key of that name exists: rotate it for a new version, or choose another name', 'name');
      const key = await this.vault.createKey(vaultName, {
        keyType: req.type,
        keySize: details.keySize as CreateKeyRequest['size'],
        curve: details.curve as CreateKeyRequest['curve'],
        keyOps,
        tags: req.tags,
        enabled: req.enabled,
        expiresOn,
        notBefore,
      }, { signal: ctx.signal });
      await this.cache.rememberChanged(vaultName, key, true);
      return { result: this.details(ctx, key), keyVersion: key.properties.version };
    }));
  }

  /** Runs `fn` holding the create lock of one vault key name (across replicas), when the host gave the lib a lock. */
  private exclusiveCreate<T>(vaultName: string, fn: (vaultName: string) => Promise<T>): Promise<T> {
    if (!this.lock) return fn(vaultName);
    return this.lock.run(prefixedLockKey('keyCreate', vaultName.toLowerCase()), () => fn(vaultName), { timeoutMs: CREATE_LOCK_TIMEOUT_MS });
  }

  /** A key version with its public key (the latest when `version` is omitted). */
  async getKey(ctx: OperationContext, name: string, version?: string): Promise<KeyDetails> {
    checkName(name);
    if (version !== undefined) checkVersion(version);
    return this.runner.used(ctx, 'get', name, {}, async () => {
      const { key } = await this.fetchCached(ctx, { name, version }, true);
      return { result: this.details(ctx, key), keyVersion: key.properties.version };
    });
  }

  /** The tenant's keys (latest versions), optionally only those carrying every given tag. */
  async listKeys(ctx: OperationContext, request: ListKeysRequest = {}): Promise<KeyPage<KeySummary>> {
    const want = checkPageSize(request, this.options.defaultPageSize);
    if (request.tags !== undefined) checkTags(request.tags, 'filter');
    const cursor = decodeKeyPageCursor(request.continuationToken);
    const wanted = Object.entries(request.tags ?? {});
    return this.runner.used(ctx, 'list', '*', {}, async () => {
      const scope = tenantKeyScope(ctx.tenantId, this.options.namePrefix);
      const mine = (k: VaultKeyItem) => k.name.toLowerCase().startsWith(scope) && wanted.every(([t, v]) => k.tags[t] === v);
      const items: KeySummary[] = [];
      let vaultToken = cursor.l;
      let skip = cursor.s;
      for (let pages = 0; pages < MAX_VAULT_PAGES_PER_LIST; pages++) {
        const page = await this.vault.listKeys({ maxPageSize: 25, continuationToken: vaultToken }, { signal: ctx.signal }).catch(foreignToken(vaultToken));
        const matches = page.items.filter(mine);
        const taken = matches.slice(skip, skip + (want - items.length));
        items.push(...taken.map((k) => this.summary(ctx, k)));
        if (items.length >= want) {
          const consumed = skip + taken.length;
          const next = consumed < matches.length ? { l: vaultToken, s: consumed } : page.continuationToken ? { l: page.continuationToken, s: 0 } : undefined;
          return { result: keyPage(items, next) };
        }
        skip = 0;
        vaultToken = page.continuationToken;
        if (!vaultToken) return { result: { items } };
      }
      return { result: keyPage(items, { l: vaultToken, s: 0 }) };
    });
  }

  async listKeyVersions(ctx: OperationContext, name: string, request: KeyPageRequest = {}): Promise<KeyPage<KeyProperties>> {
    checkName(name);
    const maxPageSize = checkPageSize(request, this.options.defaultPageSize);
    const cursor = decodeKeyPageCursor(request.continuationToken);
    return this.runner.used(ctx, 'list_versions', name, {}, async () => {
      const vaultName = this.vaultName(ctx, name);
      const page = await this.vault.listKeyVersions(vaultName, { maxPageSize, continuationToken: cursor.l }, { signal: ctx.signal }).catch(foreignToken(cursor.l));
      // The key-vault lib refuses a token of another list; nothing but this key's versions is ever answered anyway.
      const own = page.items.filter((k) => k.name.toLowerCase() === vaultName.toLowerCase());
      // The versions of no key: KEY_NOT_FOUND, as a get of it answers (the vault lists nothing, with a 200).
      if (own.length === 0 && cursor.l === undefined) await this.vault.getKey(vaultName, undefined, { signal: ctx.signal });
      return { result: keyPage(own.map((k) => this.properties(ctx, k)), page.continuationToken ? { l: page.continuationToken, s: 0 } : undefined) };
    });
  }

  async updateKeyProperties(ctx: OperationContext, name: string, request: UpdateKeyRequest): Promise<KeyDetails> {
    checkName(name);
    const req = request ?? {};
    if (req.version !== undefined) checkVersion(req.version);
    if (req.keyOps !== undefined) checkKeyOps(req.keyOps);
    if (req.tags !== undefined) checkTags(req.tags);
    const { expiresOn, notBefore } = checkDates(req.expiresOn, req.notBefore);
    checkEnabled(req.enabled);
    return this.runner.managed(ctx, 'update', name, { changed: Object.keys(req).filter((k) => k !== 'version' && req[k as keyof UpdateKeyRequest] !== undefined) }, async () => {
      if (req.keyOps !== undefined) {
        // As at creation: an EC key never gets operations it cannot perform (its type never changes, the cache will do).
        const { key: current } = await this.fetchCached(ctx, { name, version: req.version });
        checkKeyOps(req.keyOps, current.publicKey.kty === 'EC' ? 'EC' : 'RSA');
      }
      const vaultName = this.vaultName(ctx, name);
      const key = await this.vault.updateKeyProperties(vaultName, req.version, {
        enabled: req.enabled,
        tags: req.tags,
        expiresOn,
        notBefore,
        keyOps: req.keyOps,
      }, { signal: ctx.signal });
      await this.cache.rememberChanged(vaultName, key, false);
      return { result: this.details(ctx, key), keyVersion: key.properties.version };
    });
  }

  /** A new version (same type, size/curve, operations, tags); new operations use it, old versions stay usable. */
  async rotateKey(ctx: OperationContext, name: string): Promise<KeyDetails> {
    checkName(name);
    return this.runner.managed(ctx, 'rotate', name, {}, async () => {
      const vaultName = this.vaultName(ctx, name);
      const key = await this.vault.rotateKey(vaultName, { signal: ctx.signal });
      await this.cache.rememberChanged(vaultName, key, true);
      return { result: this.details(ctx, key), keyVersion: key.properties.version };
    });
  }

  /** Soft delete (every version); `recoverKey` undoes it until the vault's retention ends. */
  async deleteKey(ctx: OperationContext, name: string): Promise<DeletedKeyDetails> {
    checkName(name);
    return this.runner.managed(ctx, 'delete', name, {}, async () => {
      const vaultName = this.vaultName(ctx, name);
      const deleted = await this.vault.deleteKey(vaultName, { signal: ctx.signal });
      await this.cache.forgetChanged(vaultName);
      return { result: { name: this.tenantName(ctx, deleted.properties.name) ?? name, deletedOn: deleted.deletedOn, scheduledPurgeDate: deleted.scheduledPurgeDate } };
    });
  }

  async recoverKey(ctx: OperationContext, name: string): Promise<KeyDetails> {
    checkName(name);
    return this.runner.managed(ctx, 'recover', name, {}, async () => {
      const vaultName = this.vaultName(ctx, name);
      const key = await this.vault.recoverDeletedKey(vaultName);
      await this.cache.rememberChanged(vaultName, key, true);
      return { result: this.details(ctx, key), keyVersion: key.properties.version };
    });
  }

  /** Deletes a soft-deleted key for good (refused by a vault with purge protection). */
  async purgeKey(ctx: OperationContext, name: string): Promise<void> {
    checkName(name);
    await this.runner.managed(ctx, 'purge', name, {}, async () => {
      const vaultName = this.vaultName(ctx, name);
      await this.vault.purgeDeletedKey(vaultName);
      await this.cache.forgetChanged(vaultName);
      return { result: undefined };
    });
  }

  /**
   * Every version of the key, protected by the vault, in a blob that names its tenant scope:
   * `restoreKey` refuses it in another tenant.
   */
  async backupKey(ctx: OperationContext, name: string): Promise<Uint8Array> {
    checkName(name);
    return this.runner.managed(ctx, 'backup', name, {}, async () => {
      const vaultName = this.vaultName(ctx, name);
      // A version listed before the backup is in it (versions are never removed): the restore can confirm itself by it.
      // Not the key cache's: it hears of another replica replacing the key (purge, create or restore) only through a
      // KeyChangeFanOut, and late or never without one (or from outside KeysService); a header naming a version the blob lacks turns a confirmable lost-answer restore into OUTCOME_UNKNOWN.
      const known = await this.anyVersion(ctx, vaultName);
      return { result: sealKeyBackup(vaultName, await this.vault.backupKey(vaultName), known) };
    });
  }

  /**
   * One version the vault lists for the key (undefined: none). A page may be empty with a nextLink — Azure answers so at
   * times — so the list is followed, for a bounded number of pages, until it shows one.
   */
  private async anyVersion(ctx: OperationContext, vaultName: string): Promise<string | undefined> {
    let continuationToken: string | undefined;
    for (let pages = 0; pages < MAX_VAULT_PAGES_PER_LIST; pages++) {
      const page = await this.vault.listKeyVersions(vaultName, { maxPageSize: 1, continuationToken }, { signal: ctx.signal });
      if (page.items.length > 0) return page.items[0].version;
      continuationToken = page.continuationToken;
      if (!continuationToken) return undefined;
    }
    return undefined;
  }

  /** Restores a `backupKey` blob of this tenant (the name must not exist, not even soft-deleted). */
  async restoreKey(ctx: OperationContext, backup: Uint8Array): Promise<KeyDetails> {
    let opened: ReturnType<typeof openKeyBackup>;
    try {
      opened = openKeyBackup(backup, (v) => this.tenantName(ctx, v));
    } catch (e) {
      // Another tenant's backup (or a forged one) names no key of this tenant: refused and audited as `key:*`, as
      // another tenant's key name is on every other route.
      return this.runner.managed(ctx, 'restore', '*', {}, () => Promise.reject(e as Error));
    }
    const { vaultName, blob, version } = opened;
    const name = this.tenantName(ctx, vaultName) as string;
    return this.runner.managed(ctx, 'restore', name, {}, async () => {
      // With the version it holds, a restore whose answer is lost is confirmed by reading the key (else OUTCOME_UNKNOWN).
      const key = await this.vault.restoreKeyBackup(blob, version === undefined ? undefined : { name: vaultName, version }).catch((e: unknown) => {
        // The vault's 409 for a name that is taken (a soft-deleted one is DELETED_BUT_RECOVERABLE, passed on: recover or purge it): refused as a create of it is.
        if (isKeyVaultError(e, KeyVaultErrorCode.CONFLICT)) throw new KeysError(KeysErrorCode.KEY_ALREADY_EXISTS, 'a key of that name exists (a restore whose answer was lost may have made it: GET it and compare its versions with the backup before deleting anything); to restore over it, delete and purge it first', 'name');
        throw e;
      });
      if (key.properties.name.toLowerCase() !== vaultName.toLowerCase()) {
        // The header was edited to claim this tenant's scope: undo the restore, refuse the blob.
        await this.vault.deleteKey(key.properties.name).then((d) => this.vault.purgeDeletedKey(d.properties.name)).catch(() => undefined);
        throw notThisTenantsBackup();
      }
      await this.cache.rememberChanged(vaultName, key, true);
      return { result: this.details(ctx, key), keyVersion: key.properties.version };
    });
  }

  // ---- cryptography (crypto/key-cryptography.ts) ---------------------------------------------

  sign(ctx: OperationContext, request: SignRequest): Promise<SignResult> {
    return this.crypto.sign(ctx, request);
  }

  /** Verifies a signature over a digest; locally from the public key unless `remote` (or the `verify` option) says otherwise. */
  verify(ctx: OperationContext, request: VerifyRequest): Promise<VerifyResult> {
    return this.crypto.verify(ctx, request);
  }

  encrypt(ctx: OperationContext, request: EncryptRequest): Promise<EncryptResult> {
    return this.crypto.encrypt(ctx, request);
  }

  decrypt(ctx: OperationContext, request: DecryptRequest): Promise<DecryptResult> {
    return this.crypto.decrypt(ctx, request);
  }

  wrapKey(ctx: OperationContext, request: WrapKeyRequest): Promise<WrapKeyResult> {
    return this.crypto.wrapKey(ctx, request);
  }

  unwrapKey(ctx: OperationContext, request: UnwrapKeyRequest): Promise<UnwrapKeyResult> {
    return this.crypto.unwrapKey(ctx, request);
  }

  /** Forget every cached key (tests, or after keys were changed out of band). */
  clearCache(): void {
    this.cache.clear();
  }

  // ---- names, cache, results --------------------------------------------------------------------

  private vaultName(ctx: OperationContext, name: string): string {
    return tenantKeyVaultName(ctx.tenantId, name, this.options.namePrefix);
  }

  private tenantName(ctx: OperationContext, vaultName: string): string | undefined {
    return tenantKeyNameOf(vaultName, ctx.tenantId, this.options.namePrefix);
  }

  /**
   * The key version to use, from the cache while it is fresh, else from the vault: one read shared by every caller
   * waiting for that key, which a caller who leaves stops waiting for (CANCELLED), aborted once all have left.
   */
  private fetchCached(ctx: OperationContext, selector: KeySelector, refresh = false): Promise<CachedKey> {
    return this.cache.get(this.vaultName(ctx, selector.name), selector.version, refresh, ctx);
  }

  private details(ctx: OperationContext, key: VaultKey): KeyDetails {
    const p = key.properties;
    const out: KeyDetails = { ...this.properties(ctx, p), type: p.keyType, keyOps: [...p.keyOps], publicKey: { ...key.publicKey } };
    if (p.keySize !== undefined) out.size = p.keySize;
    if (p.curve !== undefined) out.curve = p.curve;
    return out;
  }

  private properties(ctx: OperationContext, p: VaultKeyItem): KeyProperties {
    return { ...this.summary(ctx, p), version: p.version };
  }

  /** A listed key: the vault's key list names no version (its item's version is ''), so none is answered. */
  private summary(ctx: OperationContext, p: VaultKeyItem): KeySummary {
    return {
      name: this.tenantName(ctx, p.name) ?? p.name,
      enabled: p.enabled,
      tags: { ...p.tags },
      createdOn: p.createdOn,
      updatedOn: p.updatedOn,
      expiresOn: p.expiresOn,
      notBefore: p.notBefore,
    };
  }
}
