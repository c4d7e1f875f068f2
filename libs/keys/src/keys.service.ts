import type { KeyObject } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { AuditResult, AuditService } from '@app/audit';
import { Clock, CredentialVaultError, inSpan, type OperationContext } from '@app/common';
import {
  DIGEST_BYTES,
  KeyVaultKeysProvider,
  VAULT_EC_CURVES,
  VAULT_ENCRYPTION_ALGORITHMS,
  VAULT_KEY_OPERATIONS,
  VAULT_RSA_KEY_SIZES,
  VAULT_SIGNATURE_ALGORITHMS,
  type VaultKey,
  type VaultKeyItem,
} from '@app/key-vault';
import { publicKeyOf, verifyDigestLocally } from './crypto/local-verify';
import { KeysError, KeysErrorCode } from './errors/keys.errors';
import { KEYS_CLOCK, KEYS_RESOLVED_OPTIONS } from './keys.constants';
import type { ResolvedKeysOptions } from './keys.options';
import {
  KEY_NAME_PATTERN,
  type CreateKeyRequest,
  type DecryptRequest,
  type DecryptResult,
  type DeletedKeyDetails,
  type EncryptRequest,
  type EncryptResult,
  type EncryptionAlgorithm,
  type KeyDetails,
  type KeyOperation,
  type KeyPage,
  type KeyPageRequest,
  type KeyProperties,
  type KeySelector,
  type ListKeysRequest,
  type SignRequest,
  type SignResult,
  type SignatureAlgorithm,
  type UnwrapKeyRequest,
  type UnwrapKeyResult,
  type UpdateKeyRequest,
  type VerifyRequest,
  type VerifyResult,
  type WrapKeyRequest,
  type WrapKeyResult,
} from './keys.types';
import { KeysMetrics, type KeysOperation } from './metrics/keys.metrics';
import { tenantKeyNameOf, tenantKeyScope, tenantKeyVaultName } from './naming/tenant-key-name';

const MAX_TAGS = 15;
const TAG_KEY = /^[A-Za-z0-9._:@/-]{1,128}$/;
const MAX_TAG_VALUE = 256;
/** Vault pages one listKeys call reads at most while filtering for the tenant (bounded latency). */
const MAX_VAULT_PAGES_PER_LIST = 20;
const BACKUP_FORMAT = 'cv-key-backup-1';

/** The last instant the vault's wire format holds (2^31 - 1 seconds after the epoch). */
const MAX_VAULT_DATE_MS = 2_147_483_647_000;

const ES_CURVE: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

interface CachedKey {
  key: VaultKey;
  at: number;
  publicKey?: KeyObject;
}

/** What an operation tells the audit row and the metrics (never data). */
interface UseDetails {
  algorithm?: string;
  keyVersion?: string;
  verifiedIn?: 'local' | 'vault';
  [k: string]: unknown;
}

/**
 * Tenant-scoped Key Vault keys: management (create, get, list, versions, update, rotate, delete,
 * recover, purge, backup, restore) and cryptography (sign, verify, encrypt, decrypt, wrap, unwrap).
 *
 * - Isolation: every name is mapped into the caller's tenant scope (`naming/tenant-key-name.ts`), so
 *   another tenant's key is a 404 like a missing one; lists only show the tenant's keys.
 * - Every use is audited (`key.<operation>`, resource `key:<name>`, details: version, algorithm —
 *   never plaintext, ciphertext, digest, signature or key material): management through `record`
 *   (fails the call when the row cannot be written), uses and reads through the buffered `recordRead`.
 * - Before a cryptographic call the cached key is checked (enabled, dates, key_ops, algorithm fits the
 *   key type and curve), so a refused request costs no vault transaction; verify runs locally from
 *   the public key by default (RSA; EC verifies in the vault).
 * - Vault failures surface as the gateway's `KeyVaultError` (1001..1016); the lib's own as `KeysError`.
 */
@Injectable()
export class KeysService {
  private readonly cache = new Map<string, CachedKey>();
  private readonly latest = new Map<string, { version: string; at: number }>();
  /** Concurrent cold lookups of one key share one vault call. */
  private readonly inflight = new Map<string, Promise<CachedKey>>();

  constructor(
    private readonly vault: KeyVaultKeysProvider,
    private readonly audit: AuditService,
    private readonly metrics: KeysMetrics,
    @Inject(KEYS_CLOCK) private readonly clock: Clock,
    @Inject(KEYS_RESOLVED_OPTIONS) private readonly options: ResolvedKeysOptions,
  ) {}

  // ---- management --------------------------------------------------------------------------

  async createKey(ctx: OperationContext, request: CreateKeyRequest): Promise<KeyDetails> {
    const req = request ?? ({} as CreateKeyRequest);
    this.checkName(req.name);
    if (req.type !== 'RSA' && req.type !== 'EC') throw this.invalid('type', "type must be 'RSA' or 'EC'");
    if (req.type === 'RSA') {
      if (req.curve !== undefined) throw this.invalid('curve', 'an RSA key has no curve');
      if (req.size !== undefined && !VAULT_RSA_KEY_SIZES.includes(req.size)) throw this.invalid('size', `size must be one of ${VAULT_RSA_KEY_SIZES.join(', ')}`);
    } else {
      if (req.size !== undefined) throw this.invalid('size', 'an EC key has no size (choose a curve)');
      if (req.curve !== undefined && !VAULT_EC_CURVES.includes(req.curve)) throw this.invalid('curve', `curve must be one of ${VAULT_EC_CURVES.join(', ')}`);
    }
    const keyOps = req.keyOps ?? (req.type === 'RSA' ? [...VAULT_KEY_OPERATIONS] : (['sign', 'verify'] as KeyOperation[]));
    this.checkKeyOps(keyOps, req.type);
    this.checkTags(req.tags);
    this.checkDates(req.expiresOn, req.notBefore);
    if (req.enabled !== undefined && typeof req.enabled !== 'boolean') throw this.invalid('enabled', 'enabled must be a boolean');
    const details = { keyType: req.type, keySize: req.type === 'RSA' ? (req.size ?? 2048) : undefined, curve: req.type === 'EC' ? (req.curve ?? 'P-256') : undefined };
    return this.managed(ctx, 'create', req.name, details, async () => {
      const key = await this.vault.createKey(this.vaultName(ctx, req.name), {
        keyType: req.type,
        keySize: details.keySize as CreateKeyRequest['size'],
        curve: details.curve as CreateKeyRequest['curve'],
        keyOps,
        tags: req.tags,
        enabled: req.enabled,
        expiresOn: req.expiresOn,
        notBefore: req.notBefore,
      });
      this.remember(key, true);
      return { result: this.details(ctx, key), keyVersion: key.properties.version };
    });
  }

  /** A key version with its public key (the latest when `version` is omitted). */
  async getKey(ctx: OperationContext, name: string, version?: string): Promise<KeyDetails> {
    this.checkName(name);
    if (version !== undefined) this.checkVersion(version);
    return this.used(ctx, 'get', name, {}, async () => {
      const { key } = await this.fetchCached(ctx, { name, version }, true);
      return { result: this.details(ctx, key), keyVersion: key.properties.version };
    });
  }

  /** The tenant's keys (latest versions), optionally only those carrying every given tag. */
  async listKeys(ctx: OperationContext, request: ListKeysRequest = {}): Promise<KeyPage<KeyProperties>> {
    const want = this.checkPage(request);
    if (request.tags !== undefined) this.checkTags(request.tags);
    const cursor = this.decodeCursor(request.continuationToken);
    const wanted = Object.entries(request.tags ?? {});
    return this.used(ctx, 'list', '*', {}, async () => {
      const scope = tenantKeyScope(ctx.tenantId, this.options.namePrefix);
      const mine = (k: VaultKeyItem) => k.name.toLowerCase().startsWith(scope) && wanted.every(([t, v]) => k.tags[t] === v);
      const items: KeyProperties[] = [];
      let vaultToken = cursor.l;
      let skip = cursor.s;
      for (let pages = 0; pages < MAX_VAULT_PAGES_PER_LIST; pages++) {
        const page = await this.vault.listKeys({ maxPageSize: 25, continuationToken: vaultToken });
        const matches = page.items.filter(mine);
        const taken = matches.slice(skip, skip + (want - items.length));
        items.push(...taken.map((k) => this.properties(ctx, k)));
        if (items.length >= want) {
          const consumed = skip + taken.length;
          const next = consumed < matches.length ? { l: vaultToken, s: consumed } : page.continuationToken ? { l: page.continuationToken, s: 0 } : undefined;
          return { result: this.page(items, next) };
        }
        skip = 0;
        vaultToken = page.continuationToken;
        if (!vaultToken) return { result: { items } };
      }
      return { result: this.page(items, { l: vaultToken, s: 0 }) };
    });
  }

  async listKeyVersions(ctx: OperationContext, name: string, request: KeyPageRequest = {}): Promise<KeyPage<KeyProperties>> {
    this.checkName(name);
    const maxPageSize = this.checkPage(request);
    const cursor = this.decodeCursor(request.continuationToken);
    return this.used(ctx, 'list_versions', name, {}, async () => {
      const page = await this.vault.listKeyVersions(this.vaultName(ctx, name), { maxPageSize, continuationToken: cursor.l });
      return { result: this.page(page.items.map((k) => this.properties(ctx, k)), page.continuationToken ? { l: page.continuationToken, s: 0 } : undefined) };
    });
  }

  async updateKeyProperties(ctx: OperationContext, name: string, request: UpdateKeyRequest): Promise<KeyDetails> {
    this.checkName(name);
    const req = request ?? {};
    if (req.version !== undefined) this.checkVersion(req.version);
    if (req.keyOps !== undefined) this.checkKeyOps(req.keyOps);
    if (req.tags !== undefined) this.checkTags(req.tags);
    this.checkDates(req.expiresOn, req.notBefore);
    if (req.enabled !== undefined && typeof req.enabled !== 'boolean') throw this.invalid('enabled', 'enabled must be a boolean');
    return this.managed(ctx, 'update', name, { changed: Object.keys(req).filter((k) => k !== 'version' && req[k as keyof UpdateKeyRequest] !== undefined) }, async () => {
      const key = await this.vault.updateKeyProperties(this.vaultName(ctx, name), req.version, {
        enabled: req.enabled,
        tags: req.tags,
        expiresOn: req.expiresOn,
        notBefore: req.notBefore,
        keyOps: req.keyOps,
      });
      this.remember(key, false);
      return { result: this.details(ctx, key), keyVersion: key.properties.version };
    });
  }

  /** A new version (same type, size/curve, operations, tags); new operations use it, old versions stay usable. */
  async rotateKey(ctx: OperationContext, name: string): Promise<KeyDetails> {
    this.checkName(name);
    return this.managed(ctx, 'rotate', name, {}, async () => {
      const key = await this.vault.rotateKey(this.vaultName(ctx, name));
      this.remember(key, true);
      return { result: this.details(ctx, key), keyVersion: key.properties.version };
    });
  }

  /** Soft delete (every version); `recoverKey` undoes it until the vault's retention ends. */
  async deleteKey(ctx: OperationContext, name: string): Promise<DeletedKeyDetails> {
    this.checkName(name);
    return this.managed(ctx, 'delete', name, {}, async () => {
      const vaultName = this.vaultName(ctx, name);
      const deleted = await this.vault.deleteKey(vaultName);
      this.forget(vaultName);
      return { result: { name: this.tenantName(ctx, deleted.properties.name) ?? name, deletedOn: deleted.deletedOn, scheduledPurgeDate: deleted.scheduledPurgeDate } };
    });
  }

  async recoverKey(ctx: OperationContext, name: string): Promise<KeyDetails> {
    this.checkName(name);
    return this.managed(ctx, 'recover', name, {}, async () => {
      const key = await this.vault.recoverDeletedKey(this.vaultName(ctx, name));
      this.remember(key, true);
      return { result: this.details(ctx, key), keyVersion: key.properties.version };
    });
  }

  /** Deletes a soft-deleted key for good (refused by a vault with purge protection). */
  async purgeKey(ctx: OperationContext, name: string): Promise<void> {
    this.checkName(name);
    await this.managed(ctx, 'purge', name, {}, async () => {
      const vaultName = this.vaultName(ctx, name);
      await this.vault.purgeDeletedKey(vaultName);
      this.forget(vaultName);
      return { result: undefined };
    });
  }

  /**
   * Every version of the key, protected by the vault, in a blob that names its tenant scope:
   * `restoreKey` refuses it in another tenant.
   */
  async backupKey(ctx: OperationContext, name: string): Promise<Uint8Array> {
    this.checkName(name);
    return this.managed(ctx, 'backup', name, {}, async () => {
      const vaultName = this.vaultName(ctx, name);
      const blob = await this.vault.backupKey(vaultName);
      const envelope = { format: BACKUP_FORMAT, key: vaultName, blob: Buffer.from(blob).toString('base64') };
      return { result: new Uint8Array(Buffer.from(JSON.stringify(envelope), 'utf8')) };
    });
  }

  /** Restores a `backupKey` blob of this tenant (the name must not exist, not even soft-deleted). */
  async restoreKey(ctx: OperationContext, backup: Uint8Array): Promise<KeyDetails> {
    const { vaultName, blob } = this.openBackup(ctx, backup);
    const name = this.tenantName(ctx, vaultName) as string;
    return this.managed(ctx, 'restore', name, {}, async () => {
      const key = await this.vault.restoreKeyBackup(blob);
      if (key.properties.name.toLowerCase() !== vaultName.toLowerCase()) {
        // The header was edited to claim this tenant's scope: undo the restore, refuse the blob.
        await this.vault.deleteKey(key.properties.name).then((d) => this.vault.purgeDeletedKey(d.properties.name)).catch(() => undefined);
        throw new KeysError(KeysErrorCode.INVALID_KEY_BACKUP, 'The backup is not a key backup of this tenant', 'backup');
      }
      this.remember(key, true);
      return { result: this.details(ctx, key), keyVersion: key.properties.version };
    });
  }

  // ---- cryptography ------------------------------------------------------------------------

  async sign(ctx: OperationContext, request: SignRequest): Promise<SignResult> {
    const req = this.checkSelector(request);
    this.checkSignature(req.algorithm, req.digest, 'digest');
    return this.used(ctx, 'sign', req.name, { algorithm: req.algorithm }, async () => {
      const key = await this.usable(ctx, req, 'sign', req.algorithm);
      const r = await this.vault.sign(this.ref(key), req.algorithm, req.digest);
      return { result: { name: req.name, version: r.key.version, algorithm: req.algorithm, signature: r.signature }, keyVersion: r.key.version };
    });
  }

  /** Verifies a signature over a digest; locally from the public key unless `remote` (or the `verify` option) says otherwise. */
  async verify(ctx: OperationContext, request: VerifyRequest): Promise<VerifyResult> {
    const req = this.checkSelector(request);
    this.checkSignature(req.algorithm, req.digest, 'digest');
    if (!(req.signature instanceof Uint8Array) || req.signature.length === 0 || req.signature.length > 1024) {
      throw this.invalid('signature', 'signature must be 1..1024 bytes');
    }
    const remote = req.remote ?? this.options.verify === 'remote';
    return this.used<VerifyResult>(ctx, 'verify', req.name, { algorithm: req.algorithm }, async () => {
      const key = await this.usable(ctx, req, 'verify', req.algorithm);
      const version = key.key.properties.version;
      if (!remote) {
        key.publicKey ??= publicKeyOf(key.key.publicKey);
        const ec = this.options.verifyEcLocally ? { jwk: key.key.publicKey } : undefined;
        const valid = verifyDigestLocally(key.publicKey, req.algorithm, req.digest, req.signature, ec);
        if (valid !== undefined) {
          return { result: { name: req.name, version, algorithm: req.algorithm, valid, verifiedIn: 'local' as const }, keyVersion: version, verifiedIn: 'local' as const };
        }
      }
      const r = await this.vault.verify(this.ref(key), req.algorithm, req.digest, req.signature);
      return { result: { name: req.name, version: r.key.version, algorithm: req.algorithm, valid: r.valid, verifiedIn: 'vault' as const }, keyVersion: r.key.version, verifiedIn: 'vault' as const };
    });
  }

  async encrypt(ctx: OperationContext, request: EncryptRequest): Promise<EncryptResult> {
    const req = this.checkSelector(request);
    this.checkEncryption(req.algorithm, req.plaintext, 'plaintext');
    return this.used(ctx, 'encrypt', req.name, { algorithm: req.algorithm }, async () => {
      const key = await this.usable(ctx, req, 'encrypt', req.algorithm);
      const r = await this.vault.encrypt(this.ref(key), req.algorithm, req.plaintext);
      return { result: { name: req.name, version: r.key.version, algorithm: req.algorithm, ciphertext: r.ciphertext }, keyVersion: r.key.version };
    });
  }

  async decrypt(ctx: OperationContext, request: DecryptRequest): Promise<DecryptResult> {
    const req = this.checkSelector(request);
    this.checkEncryption(req.algorithm, req.ciphertext, 'ciphertext');
    return this.used(ctx, 'decrypt', req.name, { algorithm: req.algorithm }, async () => {
      const key = await this.usable(ctx, req, 'decrypt', req.algorithm);
      const r = await this.vault.decrypt(this.ref(key), req.algorithm, req.ciphertext);
      return { result: { name: req.name, version: r.key.version, algorithm: req.algorithm, plaintext: r.plaintext }, keyVersion: r.key.version };
    });
  }

  async wrapKey(ctx: OperationContext, request: WrapKeyRequest): Promise<WrapKeyResult> {
    const req = this.checkSelector(request);
    this.checkEncryption(req.algorithm, req.key, 'key');
    return this.used(ctx, 'wrap', req.name, { algorithm: req.algorithm }, async () => {
      const key = await this.usable(ctx, req, 'wrapKey', req.algorithm);
      const r = await this.vault.wrapKey(this.ref(key), req.algorithm, req.key);
      return { result: { name: req.name, version: r.key.version, algorithm: req.algorithm, wrappedKey: r.wrappedKey }, keyVersion: r.key.version };
    });
  }

  async unwrapKey(ctx: OperationContext, request: UnwrapKeyRequest): Promise<UnwrapKeyResult> {
    const req = this.checkSelector(request);
    this.checkEncryption(req.algorithm, req.wrappedKey, 'wrappedKey');
    return this.used(ctx, 'unwrap', req.name, { algorithm: req.algorithm }, async () => {
      const key = await this.usable(ctx, req, 'unwrapKey', req.algorithm);
      const r = await this.vault.unwrapKey(this.ref(key), req.algorithm, req.wrappedKey);
      return { result: { name: req.name, version: r.key.version, algorithm: req.algorithm, key: r.unwrappedKey }, keyVersion: r.key.version };
    });
  }

  /** Forget every cached key (tests, or after keys were changed out of band). */
  clearCache(): void {
    this.cache.clear();
    this.latest.clear();
  }

  // ---- key cache and checks ------------------------------------------------------------------

  private vaultName(ctx: OperationContext, name: string): string {
    return tenantKeyVaultName(ctx.tenantId, name, this.options.namePrefix);
  }

  private tenantName(ctx: OperationContext, vaultName: string): string | undefined {
    return tenantKeyNameOf(vaultName, ctx.tenantId, this.options.namePrefix);
  }

  /** The key version to use, from the cache while it is fresh, else from the vault. */
  private async fetchCached(ctx: OperationContext, selector: KeySelector, refresh = false): Promise<CachedKey> {
    const vaultName = this.vaultName(ctx, selector.name).toLowerCase();
    const now = this.clock.now().getTime();
    const fresh = (at: number) => !refresh && now - at < this.options.keyCacheTtlMs;
    let version = selector.version;
    if (version === undefined) {
      const l = this.latest.get(vaultName);
      if (l && fresh(l.at)) version = l.version;
    }
    if (version !== undefined) {
      const hit = this.cache.get(`${vaultName}/${version.toLowerCase()}`);
      if (hit && fresh(hit.at)) return hit;
    }
    const flight = `${vaultName}/${(version ?? '').toLowerCase()}/${refresh}`;
    let pending = this.inflight.get(flight);
    if (!pending) {
      pending = this.vault
        .getKey(this.vaultName(ctx, selector.name), version)
        .then((key) => this.remember(key, selector.version === undefined))
        .finally(() => this.inflight.delete(flight));
      this.inflight.set(flight, pending);
    }
    return pending;
  }

  private remember(key: VaultKey, isLatest: boolean): CachedKey {
    const vaultName = key.properties.name.toLowerCase();
    const id = `${vaultName}/${key.properties.version.toLowerCase()}`;
    const now = this.clock.now().getTime();
    if (this.cache.size >= this.options.maxCachedKeys && !this.cache.has(id)) this.cache.delete(this.cache.keys().next().value as string);
    const entry: CachedKey = { key, at: now };
    this.cache.set(id, entry);
    if (isLatest) this.latest.set(vaultName, { version: key.properties.version, at: now });
    return entry;
  }

  private forget(vaultName: string): void {
    const prefix = `${vaultName.toLowerCase()}/`;
    for (const id of this.cache.keys()) if (id.startsWith(prefix)) this.cache.delete(id);
    this.latest.delete(vaultName.toLowerCase());
  }

  /**
   * The key, checked for this use: enabled, within its dates, `key_ops` allowing the operation, and
   * an algorithm that fits its type (and curve). Nothing reaches the vault when one check fails.
   */
  private async usable(ctx: OperationContext, selector: KeySelector, op: KeyOperation, algorithm: SignatureAlgorithm | EncryptionAlgorithm): Promise<CachedKey> {
    const entry = await this.fetchCached(ctx, selector);
    const { properties, publicKey } = entry.key;
    const now = this.clock.now().getTime();
    if (!properties.enabled) throw new KeysError(KeysErrorCode.KEY_NOT_USABLE, 'The key version is disabled');
    if (properties.expiresOn && properties.expiresOn.getTime() <= now) throw new KeysError(KeysErrorCode.KEY_NOT_USABLE, 'The key version has expired');
    if (properties.notBefore && properties.notBefore.getTime() > now) throw new KeysError(KeysErrorCode.KEY_NOT_USABLE, 'The key version is not valid yet');
    if (!properties.keyOps.includes(op)) throw new KeysError(KeysErrorCode.KEY_OPERATION_NOT_PERMITTED, `The key's key_ops do not include ${op}`);
    const needsRsa = algorithm.startsWith('RS') || algorithm.startsWith('PS') || algorithm.startsWith('RSA');
    if (needsRsa !== (publicKey.kty === 'RSA')) {
      throw new KeysError(KeysErrorCode.KEY_TYPE_MISMATCH, `${algorithm} needs an ${needsRsa ? 'RSA' : 'EC'} key; this key is ${publicKey.kty}`, 'algorithm');
    }
    if (ES_CURVE[algorithm] && publicKey.crv !== ES_CURVE[algorithm]) {
      throw new KeysError(KeysErrorCode.KEY_TYPE_MISMATCH, `${algorithm} needs a ${ES_CURVE[algorithm]} key; this key is ${publicKey.crv ?? 'another curve'}`, 'algorithm');
    }
    return entry;
  }

  private ref(entry: CachedKey): { name: string; version: string } {
    return { name: entry.key.properties.name, version: entry.key.properties.version };
  }

  private details(ctx: OperationContext, key: VaultKey): KeyDetails {
    const p = key.properties;
    const out: KeyDetails = { ...this.properties(ctx, p), type: p.keyType, keyOps: [...p.keyOps], publicKey: { ...key.publicKey } };
    if (p.keySize !== undefined) out.size = p.keySize;
    if (p.curve !== undefined) out.curve = p.curve;
    return out;
  }

  private properties(ctx: OperationContext, p: VaultKeyItem): KeyProperties {
    return {
      name: this.tenantName(ctx, p.name) ?? p.name,
      version: p.version,
      enabled: p.enabled,
      tags: { ...p.tags },
      createdOn: p.createdOn,
      updatedOn: p.updatedOn,
      expiresOn: p.expiresOn,
      notBefore: p.notBefore,
    };
  }

  // ---- paging ------------------------------------------------------------------------------

  private page(items: KeyProperties[], next: { l?: string; s: number } | undefined): KeyPage<KeyProperties> {
    return next ? { items, continuationToken: Buffer.from(JSON.stringify(next), 'utf8').toString('base64url') } : { items };
  }

  private decodeCursor(token: string | undefined): { l?: string; s: number } {
    if (token === undefined) return { s: 0 };
    try {
      if (typeof token !== 'string' || token.length > 4096) throw new Error('bad');
      const c = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { l?: unknown; s?: unknown };
      if ((c.l !== undefined && typeof c.l !== 'string') || !Number.isInteger(c.s) || (c.s as number) < 0 || (c.s as number) > 25) throw new Error('bad');
      return { l: c.l as string | undefined, s: c.s as number };
    } catch {
      throw this.invalid('continuationToken', 'continuationToken is not a token of this list');
    }
  }

  private checkPage(request: KeyPageRequest): number {
    const size = request?.maxPageSize ?? this.options.defaultPageSize;
    if (!Number.isInteger(size) || size < 1 || size > 25) throw this.invalid('maxPageSize', 'maxPageSize must be an integer from 1 to 25');
    return size;
  }

  // ---- validation --------------------------------------------------------------------------

  private checkSelector<T extends KeySelector>(request: T): T {
    if (request === null || typeof request !== 'object') throw this.invalid('(request)', 'the request must be an object');
    this.checkName(request.name);
    if (request.version !== undefined) this.checkVersion(request.version);
    return request;
  }

  private checkName(name: unknown): asserts name is string {
    if (typeof name !== 'string' || !KEY_NAME_PATTERN.test(name)) {
      throw this.invalid('name', 'a key name is 1-63 letters, digits and -, starting with a letter or digit');
    }
  }

  private checkVersion(version: unknown): void {
    if (typeof version !== 'string' || !/^[0-9a-zA-Z]{1,64}$/.test(version)) throw this.invalid('version', 'a key version is 1-64 letters or digits');
  }

  private checkSignature(algorithm: SignatureAlgorithm, digest: Uint8Array, field: string): void {
    if (!VAULT_SIGNATURE_ALGORITHMS.includes(algorithm)) {
      throw new KeysError(KeysErrorCode.ALGORITHM_NOT_ALLOWED, `algorithm must be one of ${VAULT_SIGNATURE_ALGORITHMS.join(', ')}`, 'algorithm');
    }
    if (!(digest instanceof Uint8Array) || digest.length !== DIGEST_BYTES[algorithm]) {
      throw this.invalid(field, `${algorithm} signs a ${DIGEST_BYTES[algorithm]}-byte digest (SHA-${DIGEST_BYTES[algorithm] * 8} of the data)`);
    }
  }

  private checkEncryption(algorithm: EncryptionAlgorithm, bytes: Uint8Array, field: string): void {
    if (!VAULT_ENCRYPTION_ALGORITHMS.includes(algorithm)) {
      throw new KeysError(KeysErrorCode.ALGORITHM_NOT_ALLOWED, 'algorithm must be RSA-OAEP or RSA-OAEP-256', 'algorithm');
    }
    if (algorithm === 'RSA1_5' && !this.options.allowRsa1_5) {
      throw new KeysError(KeysErrorCode.ALGORITHM_NOT_ALLOWED, 'RSA1_5 is refused (PKCS#1 v1.5 padding); use RSA-OAEP-256, or enable the allowRsa1_5 option', 'algorithm');
    }
    if (!(bytes instanceof Uint8Array) || bytes.length === 0 || bytes.length > 1024) throw this.invalid(field, `${field} must be 1..1024 bytes`);
  }

  private checkKeyOps(keyOps: unknown, type?: 'RSA' | 'EC'): void {
    if (!Array.isArray(keyOps) || keyOps.length === 0 || keyOps.some((op) => !(VAULT_KEY_OPERATIONS as readonly unknown[]).includes(op))) {
      throw this.invalid('keyOps', `keyOps must be a non-empty list of ${VAULT_KEY_OPERATIONS.join(', ')}`);
    }
    if (type === 'EC' && keyOps.some((op) => op !== 'sign' && op !== 'verify')) {
      throw new KeysError(KeysErrorCode.KEY_TYPE_MISMATCH, 'an EC key can only sign and verify', 'keyOps');
    }
  }

  private checkTags(tags: unknown): void {
    if (tags === undefined) return;
    if (tags === null || typeof tags !== 'object' || Array.isArray(tags)) throw this.invalid('tags', 'tags must be an object of string values');
    const entries = Object.entries(tags as Record<string, unknown>);
    if (entries.length > MAX_TAGS) throw this.invalid('tags', `at most ${MAX_TAGS} tags are allowed`);
    entries.forEach(([k, v], i) => {
      if (!TAG_KEY.test(k)) throw this.invalid('tags', `the key of tag #${i + 1} must match ${TAG_KEY.source}`);
      if (typeof v !== 'string' || v.length > MAX_TAG_VALUE) throw this.invalid('tags', `the value of tag #${i + 1} must be a string of at most ${MAX_TAG_VALUE} characters`);
    });
  }

  private checkDates(expiresOn: unknown, notBefore: unknown): void {
    for (const [field, d] of [['expiresOn', expiresOn], ['notBefore', notBefore]] as const) {
      if (d !== undefined && (!(d instanceof Date) || Number.isNaN(d.getTime()))) throw this.invalid(field, `${field} must be a valid Date`);
      // The Azure SDK sends dates as 32-bit seconds (`getTime() / 1000 | 0`): a later one wraps to 1901..1970.
      if (d instanceof Date && d.getTime() > MAX_VAULT_DATE_MS) throw this.invalid(field, `${field} must not be after 2038-01-19T03:14:07Z`);
    }
    if (expiresOn instanceof Date && notBefore instanceof Date && notBefore.getTime() >= expiresOn.getTime()) {
      throw this.invalid('notBefore', 'notBefore must be before expiresOn');
    }
  }

  private openBackup(ctx: OperationContext, backup: Uint8Array): { vaultName: string; blob: Uint8Array } {
    const refuse = () => new KeysError(KeysErrorCode.INVALID_KEY_BACKUP, 'The backup is not a key backup of this tenant', 'backup');
    if (!(backup instanceof Uint8Array) || backup.length === 0) throw refuse();
    let parsed: { format?: unknown; key?: unknown; blob?: unknown };
    try {
      parsed = JSON.parse(Buffer.from(backup).toString('utf8')) as typeof parsed;
    } catch {
      throw refuse();
    }
    if (parsed?.format !== BACKUP_FORMAT || typeof parsed.key !== 'string' || typeof parsed.blob !== 'string') throw refuse();
    const name = this.tenantName(ctx, parsed.key);
    if (name === undefined || !KEY_NAME_PATTERN.test(name)) throw refuse();
    const blob = Buffer.from(parsed.blob, 'base64');
    if (blob.length === 0) throw refuse();
    return { vaultName: parsed.key, blob: new Uint8Array(blob) };
  }

  private invalid(field: string, message: string): KeysError {
    return new KeysError(KeysErrorCode.KEYS_VALIDATION, message, field);
  }

  // ---- audit, metrics, spans ---------------------------------------------------------------

  /** A state change: audited with `record` (the call fails if its audit row cannot be written). */
  private managed<T>(ctx: OperationContext, operation: KeysOperation, name: string, details: UseDetails, work: () => Promise<{ result: T } & UseDetails>): Promise<T> {
    return this.run(ctx, operation, name, details, work, (event) => this.audit.record(event).then(() => undefined));
  }

  /** A use or a read: audited through the buffered `recordRead`. */
  private used<T>(ctx: OperationContext, operation: KeysOperation, name: string, details: UseDetails, work: () => Promise<{ result: T } & UseDetails>): Promise<T> {
    return this.run(ctx, operation, name, details, work, (event) => this.audit.recordRead(event));
  }

  private run<T>(
    ctx: OperationContext,
    operation: KeysOperation,
    name: string,
    details: UseDetails,
    work: () => Promise<{ result: T } & UseDetails>,
    write: (event: Parameters<AuditService['record']>[0]) => Promise<void>,
  ): Promise<T> {
    const attributes: Record<string, string> = { 'keys.operation': operation, 'tenant.id': ctx.tenantId };
    if (details.algorithm) attributes['keys.algorithm'] = details.algorithm;
    return inSpan(`keys ${operation}`, { attributes }, async (span) => {
      const started = performance.now();
      const base = { action: `key.${operation}`, context: ctx, resource: `key:${name}` };
      let outcome: ({ result: T } & UseDetails) | undefined;
      try {
        outcome = await work();
      } catch (e) {
        const durationMs = performance.now() - started;
        const code = e instanceof CredentialVaultError ? e.code : undefined;
        this.metrics.record({ operation, outcome: e instanceof CredentialVaultError ? e.severity : 'fatal', algorithm: details.algorithm }, durationMs / 1000);
        await write({ ...base, result: AuditResult.FAILURE, errorCode: code ?? 'UNKNOWN', durationMs, details: { ...details, operation } }).catch(() => undefined);
        throw e;
      }
      const { result, ...facts } = outcome;
      const durationMs = performance.now() - started;
      if (facts.verifiedIn) span.setAttribute('keys.verified_in', facts.verifiedIn);
      this.metrics.record({ operation, outcome: 'success', algorithm: details.algorithm, verifiedIn: facts.verifiedIn }, durationMs / 1000);
      await write({ ...base, result: AuditResult.SUCCESS, durationMs, details: { ...details, ...facts, operation } });
      return result;
    });
  }
}
