import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { promises as fsp, existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { ObjectRecord, VersionBase } from './objects/model';
import { VaultObjectStore } from './objects/store';

export const STORE_FILE = 'secrets.json';
export const KEYS_FILE = 'keys.json';
export const STORE_KEY_FILE = 'store.key';
const FORMAT = 1;

/** AES-256-GCM for values at rest; the ciphertext is bound to its secret name and version (AAD). */
export class ValueCipher {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('The store key must be 32 bytes');
  }

  /** Loads `<dataDir>/store.key`, creating it (mode 0600) on first use. */
  static fromDataDir(dataDir: string): ValueCipher {
    const path = join(dataDir, STORE_KEY_FILE);
    if (existsSync(path)) {
      const key = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
      return new ValueCipher(key);
    }
    const key = randomBytes(32);
    writeFileSync(path, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    chmodSync(path, 0o600);
    return new ValueCipher(key);
  }

  encrypt(plaintext: string, aad: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `v1.${iv.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}.${ct.toString('base64url')}`;
  }

  decrypt(sealed: string, aad: string): string {
    const [tag0, iv, tag, ct] = sealed.split('.');
    if (tag0 !== 'v1' || !iv || !tag || ct === undefined) throw new Error('Unknown ciphertext format');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
  }
}

/** Which string field of a version is sensitive (encrypted at rest) and how its AAD is formed. */
export interface SealedField<V> {
  file: string;
  field: keyof V & string;
  /** AAD prefix, so a key's ciphertext cannot be swapped in for a secret's. */
  aadPrefix: string;
}

/** Secrets: the value, AAD `<name>/<version>` (the format of the first release). */
export const SECRET_FIELDS: SealedField<{ value: string }> = { file: STORE_FILE, field: 'value', aadPrefix: '' };

/** Keys: the private key (PKCS#8 PEM), AAD `key:<name>/<version>`. */
export const KEY_FIELDS: SealedField<{ privateKey: string }> = { file: KEYS_FILE, field: 'privateKey', aadPrefix: 'key:' };

type StoredVersion = Record<string, unknown> & { enc: string };
interface StoredRecord extends Omit<ObjectRecord<VersionBase>, 'versions' | 'visibleAt'> {
  versions: StoredVersion[];
}
interface StoredFile {
  format: number;
  savedAt: string;
  records: StoredRecord[];
}

/**
 * Keeps `<dataDir>/<file>` in step with a store: every change schedules a debounced snapshot,
 * written to a temp file, fsynced and renamed over the old one (a crash leaves either the old or
 * the new file, never a torn one). The sensitive field (a secret's value, a key's private key) is
 * encrypted once per version and cached; it never reaches the disk in plaintext.
 */
export class StorePersistence<V extends VersionBase = VersionBase> {
  private readonly path: string;
  private readonly encCache = new WeakMap<V, string>();
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;
  private writing: Promise<void> | null = null;
  private closed = false;
  private seq = 0;

  constructor(
    private readonly dataDir: string,
    private readonly store: VaultObjectStore<V>,
    private readonly cipher: ValueCipher,
    private readonly sealed: SealedField<V>,
    private readonly debounceMs = 50,
  ) {
    this.path = join(dataDir, sealed.file);
  }

  private aadOf(name: string, version: string): string {
    return `${this.sealed.aadPrefix}${name.toLowerCase()}/${version}`;
  }

  /** Loads the file into the store (no file → empty store). Throws if the file cannot be decrypted. */
  load(): number {
    if (!existsSync(this.path)) return 0;
    const file = JSON.parse(readFileSync(this.path, 'utf8')) as StoredFile;
    if (file.format !== FORMAT) throw new Error(`Unsupported store format ${String(file.format)} in ${this.path}`);
    const records: ObjectRecord<V>[] = file.records.map((r) => ({
      ...r,
      visibleAt: 0,
      versions: r.versions.map(({ enc, ...v }) => {
        const version = { ...v, [this.sealed.field]: this.cipher.decrypt(enc, this.aadOf(r.name, String(v.version))) } as unknown as V;
        this.encCache.set(version, enc);
        return version;
      }),
    }));
    this.store.load(records);
    return records.length;
  }

  /** Hooks the store: every change schedules a write. */
  attach(): void {
    this.store.onChange(() => this.schedule());
  }

  schedule(): void {
    this.dirty = true;
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush().catch((err: unknown) => console.error(`[keyvault-emulator] persisting ${this.path} failed:`, (err as Error).message));
    }, this.debounceMs);
  }

  /** Writes pending changes now and waits for any write in progress. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.writing) await this.writing;
    if (!this.dirty) return;
    this.dirty = false;
    const snapshot = this.snapshot();
    this.writing = this.write(snapshot)
      .catch((err: unknown) => {
        this.dirty = true;
        throw err;
      })
      .finally(() => {
        this.writing = null;
      });
    await this.writing;
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }

  private snapshot(): string {
    const records: StoredRecord[] = [];
    for (const r of this.store.all()) {
      const { versions, visibleAt: _visibleAt, ...rest } = r;
      records.push({ ...rest, versions: versions.map((v) => this.sealVersion(r.name, v)) });
    }
    const file: StoredFile = { format: FORMAT, savedAt: new Date().toISOString(), records };
    return JSON.stringify(file);
  }

  private sealVersion(name: string, version: V): StoredVersion {
    let enc = this.encCache.get(version);
    if (!enc) {
      enc = this.cipher.encrypt(String(version[this.sealed.field]), this.aadOf(name, version.version));
      this.encCache.set(version, enc);
    }
    const meta: Record<string, unknown> = { ...(version as unknown as Record<string, unknown>) };
    delete meta[this.sealed.field];
    return { ...meta, enc };
  }

  private async write(content: string): Promise<void> {
    const tmp = `${this.path}.${process.pid}.${++this.seq}.tmp`;
    const handle = await fsp.open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tmp, this.path);
  }
}

export function storeFilePath(dataDir: string): string {
  return join(dataDir, STORE_FILE);
}
