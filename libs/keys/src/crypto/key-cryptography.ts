import type { Clock, OperationContext } from '@app/common';
import type { KeyVaultKeysProvider } from '@app/key-vault';
import type { KeyOperationRunner } from '../audit/key-operation-runner';
import type { CachedKey } from '../cache/key-cache';
import type { ResolvedKeysOptions } from '../keys.options';
import type {
  DecryptRequest,
  DecryptResult,
  EncryptRequest,
  EncryptResult,
  EncryptionAlgorithm,
  KeyOperation,
  KeySelector,
  SignRequest,
  SignResult,
  SignatureAlgorithm,
  UnwrapKeyRequest,
  UnwrapKeyResult,
  VerifyRequest,
  VerifyResult,
  WrapKeyRequest,
  WrapKeyResult,
} from '../keys.types';
import { checkEncryption, checkRsaBlock, checkSelector, checkSignature, checkSignatureBytes, checkUsable, rsaModulusBytes } from '../validation/key-request-checks';
import { publicKeyOf, verifyDigestLocally } from './local-verify';

/**
 * The cryptographic operations of `KeysService` (sign, verify, encrypt, decrypt, wrap, unwrap), kept apart from the
 * keys' lifecycle the service itself runs: they change nothing, and share one path — the request checked, then the
 * cached key checked for the use (`checkUsable`), so a refused request costs no vault transaction — then the vault
 * call, or the local verify. Audited as uses (`runner.used`).
 */
export class KeyCryptography {
  constructor(
    private readonly vault: KeyVaultKeysProvider,
    private readonly runner: KeyOperationRunner,
    private readonly clock: Clock,
    private readonly options: ResolvedKeysOptions,
    /** The key version to use, from the key cache, in the caller's tenant scope (`KeysService`). */
    private readonly fetch: (ctx: OperationContext, selector: KeySelector) => Promise<CachedKey>,
  ) {}

  async sign(ctx: OperationContext, request: SignRequest): Promise<SignResult> {
    const req = checkSelector(request);
    checkSignature(req.algorithm, req.digest, 'digest');
    return this.runner.used(ctx, 'sign', req.name, { algorithm: req.algorithm }, async () => {
      const key = await this.usable(ctx, req, 'sign', req.algorithm);
      const r = await this.vault.sign(this.ref(key), req.algorithm, req.digest, { signal: ctx.signal });
      return { result: { name: req.name, version: r.key.version, algorithm: req.algorithm, signature: r.signature }, keyVersion: r.key.version };
    });
  }

  /** Verifies a signature over a digest; locally from the public key unless `remote` (or the `verify` option) says otherwise. */
  async verify(ctx: OperationContext, request: VerifyRequest): Promise<VerifyResult> {
    const req = checkSelector(request);
    checkSignature(req.algorithm, req.digest, 'digest');
    checkSignatureBytes(req.signature);
    const remote = req.remote ?? this.options.verify === 'remote';
    return this.runner.used<VerifyResult>(ctx, 'verify', req.name, { algorithm: req.algorithm }, async () => {
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
      const r = await this.vault.verify(this.ref(key), req.algorithm, req.digest, req.signature, { signal: ctx.signal });
      return { result: { name: req.name, version: r.key.version, algorithm: req.algorithm, valid: r.valid, verifiedIn: 'vault' as const }, keyVersion: r.key.version, verifiedIn: 'vault' as const };
    });
  }

  async encrypt(ctx: OperationContext, request: EncryptRequest): Promise<EncryptResult> {
    const req = checkSelector(request);
    checkEncryption(req.algorithm, req.plaintext, 'plaintext', this.options.allowRsa1_5);
    return this.runner.used(ctx, 'encrypt', req.name, { algorithm: req.algorithm }, async () => {
      const key = await this.usable(ctx, req, 'encrypt', req.algorithm);
      checkRsaBlock(req.algorithm, req.plaintext, 'plaintext', modulusBytes(key));
      const r = await this.vault.encrypt(this.ref(key), req.algorithm, req.plaintext, { signal: ctx.signal });
      return { result: { name: req.name, version: r.key.version, algorithm: req.algorithm, ciphertext: r.ciphertext }, keyVersion: r.key.version };
    });
  }

  async decrypt(ctx: OperationContext, request: DecryptRequest): Promise<DecryptResult> {
    const req = checkSelector(request);
    checkEncryption(req.algorithm, req.ciphertext, 'ciphertext', this.options.allowRsa1_5);
    return this.runner.used(ctx, 'decrypt', req.name, { algorithm: req.algorithm }, async () => {
      const key = await this.usable(ctx, req, 'decrypt', req.algorithm);
      const r = await this.vault.decrypt(this.ref(key), req.algorithm, req.ciphertext, { signal: ctx.signal });
      return { result: { name: req.name, version: r.key.version, algorithm: req.algorithm, plaintext: r.plaintext }, keyVersion: r.key.version };
    });
  }

  async wrapKey(ctx: OperationContext, request: WrapKeyRequest): Promise<WrapKeyResult> {
    const req = checkSelector(request);
    checkEncryption(req.algorithm, req.key, 'key', this.options.allowRsa1_5);
    return this.runner.used(ctx, 'wrap', req.name, { algorithm: req.algorithm }, async () => {
      const key = await this.usable(ctx, req, 'wrapKey', req.algorithm);
      checkRsaBlock(req.algorithm, req.key, 'key', modulusBytes(key));
      const r = await this.vault.wrapKey(this.ref(key), req.algorithm, req.key, { signal: ctx.signal });
      return { result: { name: req.name, version: r.key.version, algorithm: req.algorithm, wrappedKey: r.wrappedKey }, keyVersion: r.key.version };
    });
  }

  async unwrapKey(ctx: OperationContext, request: UnwrapKeyRequest): Promise<UnwrapKeyResult> {
    const req = checkSelector(request);
    checkEncryption(req.algorithm, req.wrappedKey, 'wrappedKey', this.options.allowRsa1_5);
    return this.runner.used(ctx, 'unwrap', req.name, { algorithm: req.algorithm }, async () => {
      const key = await this.usable(ctx, req, 'unwrapKey', req.algorithm);
      const r = await this.vault.unwrapKey(this.ref(key), req.algorithm, req.wrappedKey, { signal: ctx.signal });
      return { result: { name: req.name, version: r.key.version, algorithm: req.algorithm, key: r.unwrappedKey }, keyVersion: r.key.version };
    });
  }

  /** The key, checked for this use (`checkUsable`): nothing reaches the vault when one check fails. */
  private async usable(ctx: OperationContext, selector: KeySelector, op: KeyOperation, algorithm: SignatureAlgorithm | EncryptionAlgorithm): Promise<CachedKey> {
    const entry = await this.fetch(ctx, selector);
    checkUsable(entry.key, op, algorithm, this.clock.now().getTime());
    return entry;
  }

  private ref(entry: CachedKey): { name: string; version: string } {
    return { name: entry.key.properties.name, version: entry.key.properties.version };
  }
}

/** The RSA modulus of a cached key, in bytes (`rsaModulusBytes`: undefined when its public key has none). */
function modulusBytes(entry: CachedKey): number | undefined {
  return rsaModulusBytes(entry.key.publicKey.n);
}
