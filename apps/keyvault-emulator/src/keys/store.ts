import { errors } from '../errors';
import { Found as FoundOf, ObjectStoreOptions, UpdateInput, VaultObjectStore } from '../objects/store';
import { GeneratedKey } from './crypto';
import { addIsoDuration } from './durations';
import { KeyOperation, KeyRecord, KeyType, KeyVersionRecord, RotationPolicyRecord } from './model';

export type Found = FoundOf<KeyVersionRecord>;

export interface CreateKeyInput extends UpdateInput {
  kty: KeyType;
  keyOps: KeyOperation[];
}

export interface UpdateKeyInput extends UpdateInput {
  keyOps?: KeyOperation[];
}

/** Which nbf/exp checks a crypto operation is subject to (Azure: encrypt, sign, wrapKey). */
export type UseCheck = { operation: string; keyOp: KeyOperation; honoursValidity: boolean };

/** The keys of one vault: a create or rotate adds a version holding a new key pair. */
export class KeyStore extends VaultObjectStore<KeyVersionRecord> {
  constructor(options: ObjectStoreOptions) {
    super('key', options);
  }

  /** Fails early (409) when the name cannot take a new version, before a key pair is generated. */
  assertCanAddVersion(name: string): void {
    this.assertWritable(this.lookup(name), name);
  }

  create(name: string, input: CreateKeyInput, material: GeneratedKey): Found {
    return this.addVersion(name, { ...this.baseVersion(input), kty: input.kty, keyOps: [...input.keyOps], ...material });
  }

  override update(name: string, version: string | undefined, input: UpdateKeyInput): Found {
    return super.update(name, version, input, (v) => {
      if (input.keyOps !== undefined) v.keyOps = [...input.keyOps];
    });
  }

  /**
   * A new version like the current one (type, key_ops, tags) with new material; as in Azure, it expires the policy's
   * `expiryTime` after its creation when the policy has one, else never.
   */
  rotate(name: string, current: KeyVersionRecord, material: GeneratedKey): Found {
    const expiryTime = (this.active(name) as KeyRecord).rotationPolicy?.expiryTime;
    const exp = expiryTime ? Math.floor(addIsoDuration(this.now(), expiryTime) / 1000) : undefined;
    return this.create(name, { kty: current.kty, keyOps: current.keyOps, tags: current.tags, attributes: exp === undefined ? {} : { exp } }, material);
  }

  /** The version a request addresses (an empty version is the current one), or undefined: for the throttle's weight. */
  addressedVersion(name: string, version: string | undefined): KeyVersionRecord | undefined {
    try {
      return this.get(name, version || undefined).version;
    } catch {
      return undefined;
    }
  }

  /** The key's rotation policy (undefined until one is set); 404 for an unknown key. */
  rotationPolicy(name: string): { record: KeyRecord; policy?: RotationPolicyRecord } {
    const record: KeyRecord = this.active(name);
    return { record, policy: record.rotationPolicy };
  }

  setRotationPolicy(name: string, policy: Pick<RotationPolicyRecord, 'lifetimeActions' | 'expiryTime'>): { record: KeyRecord; policy: RotationPolicyRecord } {
    const record: KeyRecord = this.active(name);
    const t = Math.floor(this.now() / 1000);
    record.rotationPolicy = { ...policy, created: record.rotationPolicy?.created ?? t, updated: t };
    this.changed(record.name);
    return { record, policy: record.rotationPolicy };
  }

  /** Records that the near-expiry notification of `version` (the current one) was sent, so it is sent once. */
  markNearExpiryNotified(name: string, version: string): void {
    const record: KeyRecord = this.active(name);
    record.nearExpiryNotified = version;
    this.changed(record.name);
  }

  /**
   * The version a crypto operation uses: 404 if unknown, 403 if disabled, not permitted by its
   * key_ops, or (encrypt, sign, wrapKey only, as in Azure) outside its nbf..exp window.
   */
  usable(name: string, version: string | undefined, use: UseCheck): Found {
    const found = this.get(name, version);
    const v = found.version;
    if (!v.enabled) throw errors.disabled('key', use.operation);
    if (!v.keyOps.includes(use.keyOp)) throw errors.keyOperationForbidden(use.operation);
    if (use.honoursValidity) {
      const nowSec = Math.floor(this.now() / 1000);
      if (v.nbf !== undefined && nowSec < v.nbf) throw errors.keyNotYetValid(use.operation);
      if (v.exp !== undefined && nowSec >= v.exp) throw errors.keyExpired(use.operation);
    }
    return found;
  }
}
