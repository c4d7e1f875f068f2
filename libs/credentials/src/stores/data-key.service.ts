import { randomBytes, randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { Clock, describeError, SharedLoads, TransactionRunner } from '@app/common';
import { callerLeftError, KeyVaultErrorCode, KeyVaultKeysProvider, KeyVaultProvider, isKeyVaultError, type KeyVaultCallOptions } from '@app/key-vault';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import type { ResolvedCredentialsOptions } from '../credentials.options';
import type { WrappedDataKeyEntity } from '../entities/wrapped-data-key.entity';
import { CredentialIntegrityError, CredentialsConfigurationError, DataKeyNotFoundError } from '../errors/credential-errors';
import { CredentialsPersistence } from '../persistence/credentials-persistence';
import { WrappedDataKeyRepository } from '../persistence/wrapped-data-key.repository';
import { DATA_KEY_BYTES, generateDataKey, WRAP_ALGORITHM } from '../crypto/envelope-cipher';
import { dataKeySecretName } from '../naming/vault-secret-name';
import { KeyEncryptionKeyHealthCheck } from './key-encryption-key-health-check';

export interface DataKey {
  /** Key Vault secret name holding the key, or `WRAPPED_DATA_KEY_NAME` for a key wrapped by a vault key. */
  name: string;
  /** Key Vault secret version, or the wrapped key's own version: the key's id recorded with each ciphertext. */
  version: string;
  key: Buffer;
  /** When this version was made, when known (the vault's createdOn, the wrapped row's createdAt). */
  createdOn?: Date;
}

/**
 * `data_key_name` of ciphertexts under a wrapped data key (its row: tenant + version in
 * cv_wrapped_data_keys). ':' cannot occur in a vault secret name, so the two kinds never collide.
 */
export const WRAPPED_DATA_KEY_NAME = 'cv:wrapped';

/** Bound on cached key versions (each is 32 bytes; tenants × versions). */
const MAX_CACHED_KEYS = 50_000;

/** What `DataKeyService.rewrapAll` did. Names keys by tenant and version only, never key material. */
export interface RewrapResult {
  keyEncryptionKey: string;
  /** The key-encryption key's latest version: every data key re-wrapped was wrapped under it. */
  kekVersion: string;
  /** Data keys found under another version (or key) and tried. */
  examined: number;
  rewrapped: number;
  rewrappedByTenant: Record<string, number>;
  /** Those that could not be re-wrapped (the older version disabled or gone, the vault refusing): the run went on. */
  failed: { tenantId: string; version: string; kekVersion: string; error: string }[];
  /** Data keys still not under `kekVersion` at the end (with `dryRun`: how many a run would try). */
  remaining: number;
  /**
   * When every replica will have learnt `kekVersion` (its creation + `envelope.currentKeyRefreshMs`): until then a
   * replica may still wrap a tenant's new data key under an older version. Disable older versions only after a
   * run that ends with `remaining: 0` and `settled: true`.
   */
  settlesAt: string;
  settled: boolean;
}

/**
 * Per-tenant AES-256 data keys: each a Key Vault secret (base64 of 32 random bytes), or — with
 * `envelope.keyEncryptionKey` — a row of cv_wrapped_data_keys holding the key wrapped by that vault
 * RSA key (unwrapped in the vault once per process, re-wrapped lazily after the vault key rotates).
 * Secret-stored keys keep working in both modes. A key version is
 * fetched once and kept in memory (versions are immutable); the *current* version per tenant is
 * re-checked every `envelope.currentKeyRefreshMs`. Concurrent fetches of one key share one vault call
 * (`SharedLoads`): each caller waits with its own signal and leaves at once (CANCELLED); the vault read or unwrap is
 * aborted only once every caller has left, and a later caller then starts afresh. A new data key's vault write is
 * dropped only while not sent (a sent one finishes); a wrapped key's row is inserted only after its wrap answered.
 * Two replicas creating a tenant's first key at once just make two versions: every ciphertext names
 * the version it used, so both stay readable.
 *
 * Inside a caller's open transaction a new wrapped key's row joins it (a second transaction would wait
 * for this one on SQLite), so nothing learnt there is cached or shared with other callers before the
 * commit: if it rolls back, the key's row goes with every value sealed with it in that transaction.
 */
@Injectable()
export class DataKeyService {
  private readonly logger = new Logger(DataKeyService.name);
  private readonly keys = new Map<string, Buffer>();
  private readonly current = new Map<string, { key: DataKey; checkedAt: number }>();
  /** Loads of keys kept as vault secrets (read, or created on first use), and of wrapped keys (unwrapped). */
  private readonly secretLoads = new SharedLoads<DataKey>(() => callerLeftError('getSecret', 'shared'));
  private readonly wrappedLoads = new SharedLoads<DataKey>(() => callerLeftError('unwrapKey', 'shared'));
  private latestKek?: { version: string; createdOn?: Date; checkedAt: number };
  /** Wrapped keys unwrapped by a read-only call, so not re-wrapped: the next other use of each tries (`keyVersion`). */
  private readonly rewrapSkipped = new Set<string>();
  private readonly runner: TransactionRunner;

  constructor(
    persistence: CredentialsPersistence,
    private readonly vault: KeyVaultProvider,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) private readonly options: ResolvedCredentialsOptions,
    private readonly wrapped: WrappedDataKeyRepository,
    private readonly kekHealth: KeyEncryptionKeyHealthCheck,
    @Optional() private readonly vaultKeys?: KeyVaultKeysProvider,
  ) {
    this.runner = persistence.runner;
    if (options.envelope.keyEncryptionKey && !vaultKeys) {
      throw new CredentialsConfigurationError('envelope.keyEncryptionKey needs KeyVaultKeysProvider (KeyVaultModule.forRoot with isGlobal: true)');
    }
  }

  /** The vault key wrapping data keys (`envelope.keyEncryptionKey`), when configured. */
  get keyEncryptionKey(): string | undefined {
    return this.kek;
  }

  private get kek(): string | undefined {
    return this.options.envelope.keyEncryptionKey;
  }

  nameFor(tenantId: string): string {
    return dataKeySecretName(tenantId, this.options.vault.namePrefix);
  }

  /**
   * The key new ciphertexts of this tenant are written with (created on first use). `call.signal`: the caller's
   * (`OperationContext.signal`); when it aborts the caller stops waiting (CANCELLED), see the class.
   */
  async currentKey(tenantId: string, call: KeyVaultCallOptions = {}): Promise<DataKey> {
    const cached = this.current.get(tenantId);
    if (cached && this.clock.now().getTime() - cached.checkedAt < this.options.envelope.currentKeyRefreshMs) {
      return cached.key;
    }
    if (this.kek) {
      return this.share(this.wrappedLoads, `current:${tenantId}`, call.signal, async (load) => {
        const row = await this.wrapped.latestOfTenant(tenantId);
        const key = row ? { ...(await this.openWrapped(row, load.signal)), createdOn: row.createdAt } : await this.createWrapped(tenantId, load.signal);
        if (load.current) this.whenCommitted(() => this.current.set(tenantId, { key, checkedAt: this.clock.now().getTime() }));
        return key;
      });
    }
    return this.share(this.secretLoads, `current:${tenantId}`, call.signal, async (load) => {
      const name = this.nameFor(tenantId);
      let key: DataKey;
      try {
        // A tenant's first envelope value creates its key: absent before it is an answer, not a vault error.
        const secret = await this.vault.getSecret(name, undefined, { signal: load.signal, notFoundExpected: true });
        key = { ...this.remember(name, secret.properties.version, secret.value), createdOn: secret.properties.createdOn };
      } catch (e) {
        if (!isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND)) throw e;
        key = await this.create(tenantId, name, load.signal);
      }
      if (load.current) this.current.set(tenantId, { key, checkedAt: this.clock.now().getTime() });
      return key;
    });
  }

  /**
   * A specific key version (for decryption); `tenantId` locates a wrapped key. `call.signal`: as for `currentKey`.
   * `call.readOnly`: a wrapped key is not re-wrapped after the vault key rotated (nothing written).
   */
  async keyVersion(name: string, version: string, tenantId?: string, call: KeyVaultCallOptions & { readOnly?: boolean } = {}): Promise<Buffer> {
    if (name === WRAPPED_DATA_KEY_NAME) {
      if (tenantId === undefined) throw new CredentialIntegrityError('a wrapped data key is looked up by tenant');
      const id = this.wrappedId(tenantId, version);
      const hit = this.keys.get(id);
      if (hit && (call.readOnly || !this.rewrapSkipped.has(id))) return hit;
      const row = await this.wrapped.find(tenantId, version);
      if (!row) throw new CredentialIntegrityError(`wrapped data key version ${version} of the tenant is missing`);
      return (await this.openWrapped(row, call.signal, call.readOnly)).key;
    }
    const hit = this.keys.get(`${name}/${version}`);
    if (hit) return hit;
    const key = await this.share(this.secretLoads, `version:${name}/${version}`, call.signal, async (load) => {
      const secret = await this.vault.getSecret(name, version, { signal: load.signal });
      return this.remember(name, version, secret.value);
    });
    return key.key;
  }

  /**
   * Creates a new data-key version for the tenant; older ciphertexts re-encrypt lazily on read. A tenant with no data
   * key yet is refused (`DataKeyNotFoundError`, nothing written): a mistyped tenant id would get a key of its own, and
   * a tenant's first key is made with its first envelope value anyway (`currentKey`).
   */
  async rotate(tenantId: string): Promise<DataKey> {
    await this.requireKey(tenantId);
    const key = this.kek ? await this.createWrapped(tenantId) : await this.create(tenantId, this.nameFor(tenantId));
    this.whenCommitted(() => this.current.set(tenantId, { key, checkedAt: this.clock.now().getTime() }));
    this.logger.log(`tenant ${tenantId}: data key rotated to version ${key.version}`);
    return key;
  }

  /**
   * Throws `DataKeyNotFoundError` unless the tenant has a data key: a wrapped row, or a vault secret (kept working beside
   * wrapped keys). Its versions are listed, not its value read: a disabled latest version is still a key to rotate away
   * from. For operator commands naming a tenant (`rotate`, the CLI's `data-key:reencrypt`): a mistyped id is refused.
   */
  async requireKey(tenantId: string): Promise<void> {
    const state = await this.keyState(tenantId);
    if (state !== 'present') throw new DataKeyNotFoundError(tenantId, { softDeleted: state === 'soft-deleted' });
  }

  private async keyState(tenantId: string): Promise<'present' | 'soft-deleted' | 'none'> {
    if (this.current.has(tenantId)) return 'present';
    if (this.kek && (await this.wrapped.latestOfTenant(tenantId))) return 'present';
    const name = this.nameFor(tenantId);
    try {
      // Every page until a first version: Azure may answer an empty page with a nextLink.
      for await (const _version of this.vault.listAllSecretVersions(name)) return 'present';
    } catch (e) {
      // An unknown name lists no versions; a deleted one may answer not found instead.
      if (!isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND)) throw e;
    }
    // A soft-deleted key secret is not a mistyped tenant: its envelope values are unreadable until it is recovered.
    try {
      await this.vault.getDeletedSecret(name, { notFoundExpected: true });
      return 'soft-deleted';
    } catch (e) {
      if (isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND)) return 'none';
      throw e;
    }
  }

  /** Forget cached keys and the key-encryption key's last verdict (tests, or after an operator replaced keys out of band). */
  clear(): void {
    this.keys.clear();
    this.current.clear();
    this.secretLoads.forgetAll();
    this.wrappedLoads.forgetAll();
    this.latestKek = undefined;
    this.rewrapSkipped.clear();
    this.kekHealth.clear();
  }

  /**
   * When every replica will have learnt a key version made at `createdOn`: each re-checks the current version every
   * `envelope.currentKeyRefreshMs`. Unknown creation: counted from now.
   */
  settling(createdOn: Date | undefined): { settlesAt: string; settled: boolean } {
    const now = this.clock.now().getTime();
    const at = (createdOn?.getTime() ?? now) + this.options.envelope.currentKeyRefreshMs;
    return { settlesAt: new Date(at).toISOString(), settled: now >= at };
  }

  private wrappedId(tenantId: string, version: string): string {
    return `${WRAPPED_DATA_KEY_NAME}/${tenantId}/${version}`;
  }

  /** A new data key, wrapped in the vault by the latest version of the key-encryption key, stored as a row. */
  private async createWrapped(tenantId: string, signal?: AbortSignal): Promise<DataKey> {
    const raw = generateDataKey();
    const kek = await this.kekVersion(signal);
    // The wrap changes nothing in the vault, so it may be aborted; the row is written only once it answered.
    const wrapped = await this.kekCall(() => (this.vaultKeys as KeyVaultKeysProvider).wrapKey({ name: this.kek as string, version: kek }, WRAP_ALGORITHM, raw, { signal }));
    const now = this.clock.now();
    const row: WrappedDataKeyEntity = {
      id: randomUUID(),
      tenantId,
      version: randomBytes(16).toString('hex'),
      kekName: this.kek as string,
      kekVersion: wrapped.key.version,
      wrappedKey: Buffer.from(wrapped.wrappedKey).toString('base64'),
      createdAt: now,
      updatedAt: now,
    };
    await this.wrapped.insert(row);
    return this.rememberRaw(this.wrappedId(tenantId, row.version), { name: WRAPPED_DATA_KEY_NAME, version: row.version, key: raw, createdOn: now });
  }

  /** Unwraps a row once per process (single flight), then re-wraps it if the vault key has a newer version (not `readOnly`). */
  private async openWrapped(row: WrappedDataKeyEntity, signal?: AbortSignal, readOnly = false): Promise<DataKey> {
    const key = await this.unwrapRow(row, signal);
    const id = this.wrappedId(row.tenantId, row.version);
    if (readOnly) {
      this.rewrapSkipped.add(id);
      return key;
    }
    this.rewrapSkipped.delete(id);
    await this.rewrapIfStale(row, key.key).catch((e: Error) => this.logger.warn(`tenant ${row.tenantId}: lazy re-wrap of data key ${row.version} failed: ${e.name}`));
    return key;
  }

  private async unwrapRow(row: WrappedDataKeyEntity, signal?: AbortSignal): Promise<DataKey> {
    const id = this.wrappedId(row.tenantId, row.version);
    const hit = this.keys.get(id);
    if (hit) return { name: WRAPPED_DATA_KEY_NAME, version: row.version, key: hit };
    return this.share(this.wrappedLoads, `wrapped:${id}`, signal, async (load) => {
      const r = await this.kekCall(() =>
        (this.vaultKeys as KeyVaultKeysProvider).unwrapKey({ name: row.kekName, version: row.kekVersion }, WRAP_ALGORITHM, new Uint8Array(Buffer.from(row.wrappedKey, 'base64')), {
          signal: load.signal,
        }),
      );
      const raw = Buffer.from(r.unwrappedKey);
      if (raw.length !== DATA_KEY_BYTES) throw new CredentialIntegrityError(`wrapped data key version ${row.version} is not ${DATA_KEY_BYTES} bytes`);
      return this.rememberRaw(id, { name: WRAPPED_DATA_KEY_NAME, version: row.version, key: raw });
    });
  }

  /**
   * Lazy re-wrap after the key-encryption key rotated: compare-and-set on the old vault key version.
   * True when this call re-wrapped the row; false when it was current, or another process re-wrapped it first.
   */
  private async rewrapIfStale(row: WrappedDataKeyEntity, raw: Buffer, latest?: string): Promise<boolean> {
    latest ??= await this.kekVersion();
    if (row.kekName === this.kek && row.kekVersion === latest) return false;
    const wrapped = await this.kekCall(() => (this.vaultKeys as KeyVaultKeysProvider).wrapKey({ name: this.kek as string, version: latest }, WRAP_ALGORITHM, raw));
    const next = { kekName: this.kek as string, kekVersion: wrapped.key.version, wrappedKey: Buffer.from(wrapped.wrappedKey).toString('base64'), updatedAt: this.clock.now() };
    if (!(await this.wrapped.rewrap(row.id, row.kekVersion, next))) return false;
    Object.assign(row, next);
    this.logger.log(`tenant ${row.tenantId}: data key ${row.version} re-wrapped under the key-encryption key's version ${next.kekVersion}`);
    return true;
  }

  /**
   * Re-wraps now every data key not yet under the key-encryption key's latest version (all tenants, or one),
   * instead of waiting for each to be unwrapped: after this reports none `remaining`, the key's older versions
   * (or the previous key, after `envelope.keyEncryptionKey` changed) can be disabled. Pages through the rows,
   * one at a time; a row that fails is counted and named (tenant, data key version, error class) and the
   * run goes on; `dryRun` only counts. Safe beside running replicas (compare-and-set on the old version).
   */
  async rewrapAll(options: { tenantId?: string; dryRun?: boolean; pageSize?: number } = {}): Promise<RewrapResult> {
    if (!this.kek) throw new CredentialsConfigurationError('no key-encryption key is configured (envelope.keyEncryptionKey): data keys are vault secrets, nothing to re-wrap');
    const { tenantId, dryRun = false, pageSize = 100 } = options;
    // Fresh, not the cached latest: the operator runs this right after rotating the key.
    const latest = await this.latestKekVersion({ fresh: true });
    const kek = { name: this.kek, version: latest.version };
    const result: RewrapResult = {
      keyEncryptionKey: kek.name,
      kekVersion: kek.version,
      examined: 0,
      rewrapped: 0,
      failed: [],
      rewrappedByTenant: {},
      remaining: 0,
      ...this.settling(latest.createdOn),
    };
    if (dryRun) return { ...result, remaining: await this.wrapped.countNotUnder(kek, tenantId) };
    let afterId = '';
    for (;;) {
      const rows = await this.wrapped.pageNotUnder(kek, afterId, pageSize, tenantId);
      if (rows.length === 0) break;
      for (const row of rows) {
        result.examined++;
        try {
          const { key: raw } = await this.unwrapRow(row);
          if (await this.rewrapIfStale(row, raw, kek.version)) {
            result.rewrapped++;
            result.rewrappedByTenant[row.tenantId] = (result.rewrappedByTenant[row.tenantId] ?? 0) + 1;
          }
        } catch (e) {
          result.failed.push({ tenantId: row.tenantId, version: row.version, kekVersion: row.kekVersion, error: describeError(e) });
        }
      }
      afterId = rows[rows.length - 1].id;
    }
    result.remaining = await this.wrapped.countNotUnder(kek, tenantId);
    return result;
  }

  /** The latest version of the key-encryption key, re-checked every `envelope.currentKeyRefreshMs`. */
  private async kekVersion(signal?: AbortSignal): Promise<string> {
    return (await this.latestKekVersion({ signal })).version;
  }

  /** The key-encryption key's latest version and its creation: cached for `currentKeyRefreshMs`, or read now (`fresh`). */
  private async latestKekVersion({ fresh = false, signal }: { fresh?: boolean; signal?: AbortSignal } = {}): Promise<{ version: string; createdOn?: Date }> {
    const now = this.clock.now().getTime();
    if (!fresh && this.latestKek && now - this.latestKek.checkedAt < this.options.envelope.currentKeyRefreshMs) return this.latestKek;
    const { properties: p } = await this.kekCall(() => (this.vaultKeys as KeyVaultKeysProvider).getKey(this.kek as string, undefined, { signal }));
    this.latestKek = { version: p.version, createdOn: p.createdOn, checkedAt: now };
    return this.latestKek;
  }

  /**
   * A call with the key-encryption key. A refusal that will not pass by itself (the key or its version
   * missing or disabled, no permission, an operation it does not allow) is the deployment's problem, not
   * the caller's: a configuration error (HTTP 500), not the vault's 404 / 403, which read as the caller's
   * credential being missing or forbidden. Transient failures (throttling, outage) and a caller who left
   * (CANCELLED) stay as they are.
   */
  private async kekCall<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      if (isKeyVaultError(e) && !e.retryable && e.code !== KeyVaultErrorCode.CANCELLED) {
        throw new CredentialsConfigurationError(`the key-encryption key (envelope.keyEncryptionKey) cannot be used: ${e.codeName}`, { cause: e });
      }
      throw e;
    }
  }

  /** `signal`: the write is dropped while not sent (nobody needs the key then), never once sent (the provider's rule). */
  private async create(tenantId: string, name: string, signal?: AbortSignal): Promise<DataKey> {
    const raw = generateDataKey();
    const secret = await this.vault.setSecret(
      name,
      raw.toString('base64'),
      { contentType: 'application/octet-stream', tags: { 'cv-purpose': 'envelope-data-key', 'cv-tenant': tenantId } },
      { signal },
    );
    return { ...this.remember(name, secret.properties.version, secret.value), createdOn: secret.properties.createdOn ?? this.clock.now() };
  }

  private remember(name: string, version: string, encoded: string): DataKey {
    const key = Buffer.from(encoded, 'base64');
    if (key.length !== DATA_KEY_BYTES) {
      // Named by its version only: the secret's name carries the tenant, and this message reaches the client (500).
      throw new CredentialIntegrityError(`the data key of version ${version} is not ${DATA_KEY_BYTES} bytes of base64`);
    }
    return this.rememberRaw(`${name}/${version}`, { name, version, key });
  }

  private rememberRaw(cacheId: string, key: DataKey): DataKey {
    this.whenCommitted(() => {
      if (this.keys.size >= MAX_CACHED_KEYS) this.keys.delete(this.keys.keys().next().value as string);
      this.keys.set(cacheId, key.key);
    });
    return key;
  }

  /** Now outside a transaction; inside one, once it has committed (never if it rolls back). */
  private whenCommitted(fn: () => void): void {
    if (this.runner.inTransaction()) this.runner.afterCommit(fn);
    else fn();
  }

  /**
   * Shares one fetch between concurrent callers, each leaving when its `signal` aborts — not one made inside a
   * transaction, which may roll back: that is the caller's own, on its own signal. `load.current` is false once it
   * is nobody's (all left, or `clear`): what it learns of the current key is then not kept.
   */
  private share(loads: SharedLoads<DataKey>, id: string, signal: AbortSignal | undefined, work: (load: { signal?: AbortSignal; current: boolean }) => Promise<DataKey>): Promise<DataKey> {
    if (this.runner.inTransaction()) return work({ signal, current: true });
    return loads.join(id, work, signal);
  }
}
