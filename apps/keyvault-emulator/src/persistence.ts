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
  /** Names the snapshot: only a journal that starts with this id continues it. */
  id?: string;
  savedAt: string;
  records: StoredRecord[];
}
/** A journal line: an object's whole record after a change, or its removal (lower-cased name). */
type JournalEntry = { put: StoredRecord } | { del: string };

export const JOURNAL_SUFFIX = '.journal';
/** The journal is folded into a new snapshot once it outgrows the snapshot (and this). */
const MIN_COMPACT_BYTES = 1 << 20;

/**
 * Keeps `<dataDir>/<file>` in step with a store. Every change schedules a debounced flush (50 ms), and a
 * write request waits for `durable()` before it is answered; a flush's cost is proportional to the change: the records changed since the last flush are
 * appended to `<file>.journal` (one JSON line each, fsynced). Once the journal outgrows the snapshot,
 * a new snapshot is written to a temp file, fsynced and renamed over the old one, and a new journal
 * naming it replaces the old (so the cost of snapshots stays proportional to the writes). A crash
 * leaves the old or the new snapshot, never a torn one, and at worst a torn last journal line, which
 * loading ignores; a journal that does not name the snapshot (a crash between the two renames) is
 * stale and ignored. The sensitive field (a secret's value, a key's private key) is encrypted once
 * per version and cached; it never reaches the disk in plaintext.
 */
export class StorePersistence<V extends VersionBase = VersionBase> {
  private readonly path: string;
  private readonly journalPath: string;
  private readonly encCache = new WeakMap<V, string>();
  private timer: NodeJS.Timeout | undefined;
  /** Lower-cased names changed since the last flush. */
  private readonly dirty = new Set<string>();
  /** Everything may have changed (or the journal must be replaced): the next flush writes a snapshot. */
  private full = false;
  private writing: Promise<void> | null = null;
  private closed = false;
  private seq = 0;
  /** The snapshot on disk that the journal continues (null: none yet). */
  private snapshotId: string | null = null;
  private snapshotBytes = 0;
  private journalBytes = 0;
  private journal: fsp.FileHandle | null = null;

  constructor(
    private readonly dataDir: string,
    private readonly store: VaultObjectStore<V>,
    private readonly cipher: ValueCipher,
    private readonly sealed: SealedField<V>,
    private readonly debounceMs = 50,
  ) {
    this.path = join(dataDir, sealed.file);
    this.journalPath = this.path + JOURNAL_SUFFIX;
  }

  private aadOf(name: string, version: string): string {
    return `${this.sealed.aadPrefix}${name.toLowerCase()}/${version}`;
  }

  /** Loads the snapshot and its journal into the store (no file → empty store). Throws if either cannot be decrypted. */
  load(): number {
    if (!existsSync(this.path)) return 0;
    const text = readFileSync(this.path, 'utf8');
    const file = JSON.parse(text) as StoredFile;
    if (file.format !== FORMAT) throw new Error(`Unsupported store format ${String(file.format)} in ${this.path}`);
    const records = new Map(file.records.map((r) => [r.name.toLowerCase(), r]));
    this.snapshotId = file.id ?? null;
    this.snapshotBytes = Buffer.byteLength(text);
    for (const entry of this.readJournal()) {
      if ('put' in entry) records.set(entry.put.name.toLowerCase(), entry.put);
      else records.delete(entry.del);
    }
    const loaded = [...records.values()].map((r) => this.open(r));
    this.store.load(loaded);
    return loaded.length;
  }

  /** The journal's entries if it continues the snapshot; a torn last line (a crash mid-append) is dropped. */
  private readJournal(): JournalEntry[] {
    if (!existsSync(this.journalPath)) return [];
    const text = readFileSync(this.journalPath, 'utf8');
    this.journalBytes = Buffer.byteLength(text);
    const lines = text.split('\n');
    const header = parseLine(lines[0]) as { snapshot?: string } | undefined;
    if (!this.snapshotId || header?.snapshot !== this.snapshotId) {
      this.full = true; // stale: replaced by the next flush
      return [];
    }
    const entries: JournalEntry[] = [];
    const last = lines.length - 1; // text ends with '\n': lines[last] is '' unless torn
    for (let i = 1; i <= last; i++) {
      if (lines[i] === '') continue;
      const entry = parseLine(lines[i]) as JournalEntry | undefined;
      if (entry) entries.push(entry);
      else if (i === last) this.full = true; // torn tail: never appended after
      else throw new Error(`Corrupt journal line ${i + 1} in ${this.journalPath}`);
    }
    return entries;
  }

  private open(r: StoredRecord): ObjectRecord<V> {
    return {
      ...r,
      visibleAt: 0,
      versions: r.versions.map(({ enc, ...v }) => {
        const version = { ...v, [this.sealed.field]: this.cipher.decrypt(enc, this.aadOf(r.name, String(v.version))) } as unknown as V;
        this.encCache.set(version, enc);
        return version;
      }),
    };
  }

  /** Hooks the store: every change schedules a write. */
  attach(): void {
    this.store.onChange((name) => {
      if (name === undefined) this.full = true;
      else this.dirty.add(name.toLowerCase());
      this.schedule();
    });
  }

  schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush().catch((err: unknown) => console.error(`[keyvault-emulator] persisting ${this.path} failed:`, (err as Error).message));
    }, this.debounceMs);
  }

  /**
   * Resolves once every change made so far is on disk: the vault answers a write only then, as Azure does, so
   * a crash after the answer cannot lose it. Concurrent writes share one journal append and fsync (the ones
   * that arrive while a flush is in progress go in the next).
   */
  async durable(): Promise<void> {
    if (!this.closed) await this.flush();
  }

  /** Writes pending changes now and waits for any write in progress. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.writing) await this.writing;
    if (!this.full && this.dirty.size === 0) return;
    const compact = this.full || this.snapshotId === null || this.journalBytes >= Math.max(MIN_COMPACT_BYTES, this.snapshotBytes);
    const names = [...this.dirty];
    this.dirty.clear();
    this.full = false;
    this.writing = (compact ? this.compact() : this.append(names))
      .catch((err: unknown) => {
        // The journal may end torn: start over from a snapshot.
        this.full = true;
        throw err;
      })
      .finally(() => {
        this.writing = null;
      });
    await this.writing;
  }

  /** Flushes, folding the journal into the snapshot (so the snapshot file alone holds the state). */
  async close(): Promise<void> {
    if (this.journalBytes > 0) this.full = true;
    await this.flush();
    this.closed = true;
    await this.journal?.close();
    this.journal = null;
  }

  private async append(names: string[]): Promise<void> {
    const lines = names.map((key) => {
      const record = this.store.peek(key);
      const entry: JournalEntry = record ? { put: this.seal(record) } : { del: key };
      return JSON.stringify(entry) + '\n';
    });
    const content = lines.join('');
    this.journal ??= await fsp.open(this.journalPath, 'a', 0o600);
    await this.journal.appendFile(content, 'utf8');
    await this.journal.sync();
    this.journalBytes += Buffer.byteLength(content);
  }

  private async compact(): Promise<void> {
    const id = randomBytes(8).toString('hex');
    const snapshot = this.snapshot(id);
    await this.replace(this.path, snapshot);
    const header = JSON.stringify({ format: FORMAT, snapshot: id }) + '\n';
    await this.journal?.close();
    this.journal = null;
    await this.replace(this.journalPath, header);
    this.snapshotId = id;
    this.snapshotBytes = Buffer.byteLength(snapshot);
    this.journalBytes = Buffer.byteLength(header);
  }

  private snapshot(id: string): string {
    const records: StoredRecord[] = [];
    for (const r of this.store.all()) records.push(this.seal(r));
    const file: StoredFile = { format: FORMAT, id, savedAt: new Date().toISOString(), records };
    return JSON.stringify(file);
  }

  private seal(r: ObjectRecord<V>): StoredRecord {
    const { versions, visibleAt: _visibleAt, ...rest } = r;
    return { ...rest, versions: versions.map((v) => this.sealVersion(r.name, v)) };
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

  /** Writes `path` whole: a temp file, fsynced, renamed over it. */
  private async replace(path: string, content: string): Promise<void> {
    const tmp = `${path}.${process.pid}.${++this.seq}.tmp`;
    const handle = await fsp.open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tmp, path);
  }
}

function parseLine(line: string | undefined): unknown {
  try {
    return line ? JSON.parse(line) : undefined;
  } catch {
    return undefined;
  }
}

export function storeFilePath(dataDir: string): string {
  return join(dataDir, STORE_FILE);
}
