import { randomBytes } from 'node:crypto';
import { errors } from '../errors';
import { latestVersion, SecretRecord, SecretVersionRecord } from './model';
import { AttributesInput, MAX_BACKUP_VERSIONS } from './validation';

export interface SecretStoreOptions {
  softDeleteRetentionDays: number;
  purgeProtection: boolean;
  operationDelayMs: number;
  /** Vault label used in error messages. */
  vaultName: string;
  now?: () => number;
}

export interface SetSecretInput {
  value: string;
  contentType?: string | null;
  tags?: Record<string, string> | null;
  attributes: AttributesInput;
}

export interface UpdateSecretInput {
  contentType?: string | null;
  tags?: Record<string, string> | null;
  attributes: AttributesInput;
}

export interface Found {
  record: SecretRecord;
  version: SecretVersionRecord;
}

const key = (name: string) => name.toLowerCase();
const seconds = (ms: number) => Math.floor(ms / 1000);
const newVersionId = () => randomBytes(16).toString('hex');

/**
 * The in-memory state of one vault: secrets keyed by lower-cased name, each either active or
 * soft-deleted. Pure domain logic; HTTP rendering and persistence live elsewhere.
 */
export class SecretStore {
  private readonly records = new Map<string, SecretRecord>();
  private readonly now: () => number;
  private listeners: Array<() => void> = [];

  constructor(readonly options: SecretStoreOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Called after every mutation (persistence hooks in here). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  get recoveryLevel(): string {
    const customized = this.options.softDeleteRetentionDays < 90 ? 'Customized' : '';
    return this.options.purgeProtection ? `${customized}Recoverable` : `${customized}Recoverable+Purgeable`;
  }

  get recoverableDays(): number {
    return this.options.softDeleteRetentionDays;
  }

  set(name: string, input: SetSecretInput): Found {
    const existing = this.lookup(name);
    const now = this.now();
    if (existing) {
      if (existing.state === 'deleted') {
        throw existing.visibleAt > now ? errors.beingDeleted(existing.name) : errors.deletedButRecoverable(existing.name);
      }
      if (existing.visibleAt > now) throw errors.beingRecovered(existing.name);
    }
    const t = seconds(now);
    const version: SecretVersionRecord = {
      version: newVersionId(),
      value: input.value,
      enabled: input.attributes.enabled ?? true,
      created: t,
      updated: t,
    };
    if (input.contentType !== undefined && input.contentType !== null) version.contentType = input.contentType;
    if (input.tags) version.tags = { ...input.tags };
    if (input.attributes.nbf !== undefined) version.nbf = input.attributes.nbf;
    if (input.attributes.exp !== undefined) version.exp = input.attributes.exp;
    const record: SecretRecord = existing ?? { name, versions: [], state: 'active', visibleAt: 0 };
    record.versions.push(version);
    if (!existing) this.records.set(key(name), record);
    this.changed();
    return { record, version };
  }

  /** Latest (version undefined or '') or a specific version of an active secret. Throws 404/403. */
  get(name: string, version?: string, opts: { requireEnabled?: boolean } = {}): Found {
    const record = this.active(name);
    const found = this.findVersion(record, name, version);
    if (opts.requireEnabled && !found.version.enabled) throw errors.disabled('get');
    return found;
  }

  update(name: string, version: string | undefined, input: UpdateSecretInput): Found {
    const found = this.get(name, version);
    const v = found.version;
    if (input.attributes.enabled !== undefined) v.enabled = input.attributes.enabled;
    if (input.attributes.nbf !== undefined) v.nbf = input.attributes.nbf;
    if (input.attributes.exp !== undefined) v.exp = input.attributes.exp;
    if (input.contentType !== undefined) {
      if (input.contentType === null) delete v.contentType;
      else v.contentType = input.contentType;
    }
    if (input.tags !== undefined) {
      if (input.tags === null) delete v.tags;
      else v.tags = { ...input.tags };
    }
    v.updated = seconds(this.now());
    this.changed();
    return found;
  }

  /** Active, visible secrets sorted by lower-cased name. */
  listActive(): SecretRecord[] {
    const now = this.now();
    return [...this.records.entries()]
      .filter(([, r]) => r.state === 'active' && r.visibleAt <= now)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, r]) => r);
  }

  /** Versions of an active secret sorted by version id (Azure's order); [] for an unknown name. */
  listVersions(name: string): { record?: SecretRecord; versions: SecretVersionRecord[] } {
    const record = this.lookup(name);
    if (!record || record.state !== 'active' || record.visibleAt > this.now()) return { versions: [] };
    return { record, versions: [...record.versions].sort((a, b) => (a.version < b.version ? -1 : 1)) };
  }

  delete(name: string): SecretRecord {
    const record = this.active(name);
    const now = this.now();
    record.state = 'deleted';
    record.deletedDate = seconds(now);
    record.scheduledPurgeDate = record.deletedDate + this.options.softDeleteRetentionDays * 86400;
    record.visibleAt = now + this.options.operationDelayMs;
    this.changed();
    return record;
  }

  getDeleted(name: string): SecretRecord {
    const record = this.lookup(name);
    if (!record || record.state !== 'deleted' || record.visibleAt > this.now()) throw errors.deletedSecretNotFound(name);
    return record;
  }

  /** Deleted, visible secrets sorted by lower-cased name. */
  listDeleted(): SecretRecord[] {
    this.purgeExpired();
    const now = this.now();
    return [...this.records.entries()]
      .filter(([, r]) => r.state === 'deleted' && r.visibleAt <= now)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, r]) => r);
  }

  recover(name: string): SecretRecord {
    const record = this.getDeleted(name);
    record.state = 'active';
    delete record.deletedDate;
    delete record.scheduledPurgeDate;
    record.visibleAt = this.now() + this.options.operationDelayMs;
    this.changed();
    return record;
  }

  purge(name: string): void {
    const record = this.getDeleted(name);
    if (this.options.purgeProtection) throw errors.purgeProtected(this.options.vaultName);
    this.records.delete(key(record.name));
    this.changed();
  }

  /** The record to back up (all versions). Throws 404, or 400 beyond 500 versions. */
  backup(name: string): SecretRecord {
    const record = this.active(name);
    if (record.versions.length > MAX_BACKUP_VERSIONS) throw errors.tooManyVersionsForBackup(record.name, record.versions.length);
    return record;
  }

  restore(backup: { name: string; versions: SecretVersionRecord[] }): SecretRecord {
    const existing = this.lookup(backup.name);
    if (existing) {
      if (existing.state === 'deleted') throw errors.deletedButRecoverable(existing.name);
      throw errors.alreadyExists(existing.name);
    }
    const record: SecretRecord = {
      name: backup.name,
      versions: backup.versions.map((v) => ({ ...v, tags: v.tags ? { ...v.tags } : undefined })),
      state: 'active',
      visibleAt: 0,
    };
    for (const v of record.versions) if (v.tags === undefined) delete v.tags;
    this.records.set(key(record.name), record);
    this.changed();
    return record;
  }

  /** Purges soft-deleted secrets whose scheduled purge date has passed. Returns how many. */
  purgeExpired(): number {
    const nowSec = seconds(this.now());
    let n = 0;
    for (const [k, r] of this.records) {
      if (r.state === 'deleted' && r.scheduledPurgeDate !== undefined && r.scheduledPurgeDate <= nowSec) {
        this.records.delete(k);
        n++;
      }
    }
    if (n > 0) this.changed();
    return n;
  }

  /** All records, for persistence. */
  all(): IterableIterator<SecretRecord> {
    return this.records.values();
  }

  /** Replaces the state (used when loading from disk); does not notify listeners. */
  load(records: SecretRecord[]): void {
    this.records.clear();
    for (const r of records) this.records.set(key(r.name), { ...r, visibleAt: 0 });
  }

  get size(): number {
    return this.records.size;
  }

  private lookup(name: string): SecretRecord | undefined {
    const record = this.records.get(key(name));
    if (record && record.state === 'deleted' && record.scheduledPurgeDate !== undefined && record.scheduledPurgeDate <= seconds(this.now())) {
      this.records.delete(key(name));
      this.changed();
      return undefined;
    }
    return record;
  }

  private active(name: string): SecretRecord {
    const record = this.lookup(name);
    if (!record || record.state !== 'active' || record.visibleAt > this.now()) throw errors.secretNotFound(name);
    return record;
  }

  private findVersion(record: SecretRecord, name: string, version?: string): Found {
    if (!version) return { record, version: latestVersion(record) };
    const v = record.versions.find((x) => x.version === version.toLowerCase());
    if (!v) throw errors.secretNotFound(`${name}/${version}`);
    return { record, version: v };
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }
}
