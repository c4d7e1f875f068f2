import { KeyOperationName } from '../http/router';
import { latestVersion } from '../objects/model';
import { backupBlobOf } from '../objects/backup';
import { paginate, parseMaxResults } from '../objects/paging';
import { ApiRequest as Request, ApiResponse, baseAttributes, deletedFields, nextLink, ok, skipTokenOf } from '../objects/render';
import { assertObjectName } from '../objects/validation';
import { decodeKeyBackup, encodeKeyBackup } from './backup';
import { decrypt, encrypt, generateKey, shapeOf, signDigest, verifyDigest } from './crypto';
import { DEFAULT_LIFETIME_ACTIONS, KeyRecord, KeyVersionRecord, RotationPolicyRecord } from './model';
import { KeyStore, UseCheck } from './store';
import { assertNoKeyRelease, base64urlProperty, encryptionAlgorithm, parseCreateKey, parseRotationPolicy, parseUpdateKey, signatureAlgorithm } from './validation';

type ApiRequest = Request<KeyOperationName>;

const USE: Record<'sign' | 'verify' | 'encrypt' | 'decrypt' | 'wrapKey' | 'unwrapKey', UseCheck> = {
  sign: { operation: 'sign', keyOp: 'sign', honoursValidity: true },
  verify: { operation: 'verify', keyOp: 'verify', honoursValidity: false },
  encrypt: { operation: 'encrypt', keyOp: 'encrypt', honoursValidity: true },
  decrypt: { operation: 'decrypt', keyOp: 'decrypt', honoursValidity: false },
  wrapKey: { operation: 'wrapKey', keyOp: 'wrapKey', honoursValidity: true },
  unwrapKey: { operation: 'unwrapKey', keyOp: 'unwrapKey', honoursValidity: false },
};

/**
 * The Key Vault keys REST API over a KeyStore: key bundles carry the public JWK only (RSA n/e, EC
 * crv/x/y) — the private key never leaves the vault —, crypto operations use node:crypto.
 */
export class KeysApi {
  constructor(
    private readonly store: KeyStore,
    private readonly vaultUrl: string,
  ) {}

  async handle(req: ApiRequest): Promise<ApiResponse> {
    if (req.name !== undefined) assertObjectName(req.name);
    const name = req.name!;
    switch (req.operation) {
      case 'createKey': {
        const { input, shape } = parseCreateKey(req.body);
        assertNoKeyRelease(req.body, req.apiVersion);
        this.store.assertCanAddVersion(name);
        const found = this.store.create(name, input, await generateKey(shape));
        return ok(this.bundle(found.record, found.version, req.apiVersion));
      }
      case 'rotateKey': {
        const current = this.store.get(name).version;
        const found = this.store.rotate(name, current, await generateKey(shapeOf(current)));
        return ok(this.bundle(found.record, found.version, req.apiVersion));
      }
      case 'getKeyRotationPolicy': {
        const { record, policy } = this.store.rotationPolicy(name);
        return ok(this.rotationPolicy(record, policy));
      }
      case 'updateKeyRotationPolicy': {
        const { record, policy } = this.store.setRotationPolicy(name, parseRotationPolicy(req.body));
        return ok(this.rotationPolicy(record, policy));
      }
      case 'getKey': {
        const found = this.store.get(name, req.version);
        return ok(this.bundle(found.record, found.version, req.apiVersion));
      }
      case 'updateKey': {
        const found = this.store.update(name, req.version, parseUpdateKey(req.body));
        return ok(this.bundle(found.record, found.version, req.apiVersion));
      }
      case 'listKeys':
        return ok(this.listKeys(req));
      case 'listKeyVersions':
        return ok(this.listVersions(req));
      case 'deleteKey':
        return ok(this.deletedBundle(this.store.delete(name), req.apiVersion));
      case 'getDeletedKey':
        return ok(this.deletedBundle(this.store.getDeleted(name), req.apiVersion));
      case 'listDeletedKeys':
        return ok(this.listDeleted(req));
      case 'recoverDeletedKey': {
        const record = this.store.recover(name);
        return ok(this.bundle(record, latestVersion(record), req.apiVersion));
      }
      case 'purgeDeletedKey':
        this.store.purge(name);
        return { status: 204 };
      case 'backupKey':
        return ok({ value: encodeKeyBackup(this.store.backup(name)).toString('base64url') });
      case 'restoreKey': {
        const backup = decodeKeyBackup(backupBlobOf(req.body));
        const record = this.store.restore(backup, `${this.vaultUrl}/keys/${backup.name}/${latestVersion(backup).version}`);
        return ok(this.bundle(record, latestVersion(record), req.apiVersion));
      }
      case 'sign': {
        const alg = signatureAlgorithm(req.body);
        const digest = base64urlProperty(req.body, 'value');
        const v = this.store.usable(name, req.version, USE.sign).version;
        return ok({ kid: this.kid(name, v), value: signDigest(v, alg, digest).toString('base64url') });
      }
      case 'verify': {
        const alg = signatureAlgorithm(req.body);
        const digest = base64urlProperty(req.body, 'digest');
        const signature = base64urlProperty(req.body, 'value');
        const v = this.store.usable(name, req.version, USE.verify).version;
        return ok({ value: verifyDigest(v, alg, digest, signature) });
      }
      case 'encrypt':
      case 'wrapKey': {
        const alg = encryptionAlgorithm(req.body);
        const plaintext = base64urlProperty(req.body, 'value');
        const v = this.store.usable(name, req.version, USE[req.operation]).version;
        return ok({ kid: this.kid(name, v), value: encrypt(v, alg, plaintext).toString('base64url') });
      }
      case 'decrypt':
      case 'unwrapKey': {
        const alg = encryptionAlgorithm(req.body);
        const ciphertext = base64urlProperty(req.body, 'value');
        const v = this.store.usable(name, req.version, USE[req.operation]).version;
        return ok({ kid: this.kid(name, v), value: decrypt(v, alg, ciphertext).toString('base64url') });
      }
    }
  }

  private listKeys(req: ApiRequest) {
    const pageSize = parseMaxResults(req.query.get('maxresults'));
    const page = paginate(this.store.listActive(), (r) => r.name.toLowerCase(), pageSize, skipTokenOf(req.query));
    return {
      value: page.items.map((r) => this.item(r, latestVersion(r), `${this.vaultUrl}/keys/${r.name}`, req.apiVersion)),
      nextLink: nextLink(req.origin ?? this.vaultUrl, '/keys', req.apiVersion, pageSize, page.nextMarker),
    };
  }

  private listVersions(req: ApiRequest) {
    const pageSize = parseMaxResults(req.query.get('maxresults'));
    const { record, versions } = this.store.listVersions(req.name!);
    const page = paginate(versions, (v) => v.version, pageSize, skipTokenOf(req.query));
    return {
      value: record ? page.items.map((v) => this.item(record, v, this.kid(record.name, v), req.apiVersion)) : [],
      nextLink: nextLink(req.origin ?? this.vaultUrl, `/keys/${encodeURIComponent(req.name!)}/versions`, req.apiVersion, pageSize, page.nextMarker),
    };
  }

  private listDeleted(req: ApiRequest) {
    const pageSize = parseMaxResults(req.query.get('maxresults'));
    const page = paginate(this.store.listDeleted(), (r) => r.name.toLowerCase(), pageSize, skipTokenOf(req.query));
    return {
      value: page.items.map((r) => ({
        ...deletedFields(this.vaultUrl, 'deletedkeys', r),
        ...this.item(r, latestVersion(r), `${this.vaultUrl}/keys/${r.name}`, req.apiVersion),
      })),
      nextLink: nextLink(req.origin ?? this.vaultUrl, '/deletedkeys', req.apiVersion, pageSize, page.nextMarker),
    };
  }

  /**
   * A key that never had a policy reports the default as the service does (recorded): notify 30 days before expiry,
   * no `id`, `attributes: null`.
   */
  private rotationPolicy(record: KeyRecord, policy: RotationPolicyRecord | undefined) {
    if (!policy) return { lifetimeActions: DEFAULT_LIFETIME_ACTIONS, attributes: null };
    const attributes: Record<string, unknown> = {};
    if (policy.expiryTime) attributes.expiryTime = policy.expiryTime;
    Object.assign(attributes, { created: policy.created, updated: policy.updated });
    return { id: `${this.vaultUrl}/keys/${record.name}/rotationpolicy`, lifetimeActions: policy.lifetimeActions, attributes };
  }

  private kid(name: string, v: KeyVersionRecord): string {
    return `${this.vaultUrl}/keys/${name}/${v.version}`;
  }

  /** `hsmPlatform` as the service labels keys: "0" software, "2" an HSM key (the current platform; here still software). */
  private attributes(v: KeyVersionRecord, apiVersion: string) {
    return { ...baseAttributes(v, this.store, apiVersion), exportable: false, hsmPlatform: v.kty.endsWith('-HSM') ? '2' : '0' };
  }

  private item(record: KeyRecord, v: KeyVersionRecord, kid: string, apiVersion: string) {
    const out: Record<string, unknown> = { kid, attributes: this.attributes(v, apiVersion) };
    if (v.tags) out.tags = { ...v.tags };
    return out;
  }

  private bundle(record: KeyRecord, v: KeyVersionRecord, apiVersion: string) {
    const out: Record<string, unknown> = {
      key: { kid: this.kid(record.name, v), kty: v.kty, key_ops: [...v.keyOps], ...v.publicJwk },
      attributes: this.attributes(v, apiVersion),
    };
    if (v.tags) out.tags = { ...v.tags };
    return out;
  }

  private deletedBundle(record: KeyRecord, apiVersion: string) {
    return { ...deletedFields(this.vaultUrl, 'deletedkeys', record), ...this.bundle(record, latestVersion(record), apiVersion) };
  }
}
