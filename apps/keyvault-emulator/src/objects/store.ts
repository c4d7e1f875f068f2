import { randomBytes } from 'node:crypto';
import { errors, ObjectKind } from '../errors';
import { latestVersion, ObjectRecord, VersionBase } from './model';
import { AttributesInput, MAX_BACKUP_VERSIONS } from './validation';

export interface ObjectStoreOptions {
  softDeleteRetentionDays: number;
  purgeProtection: boolean;
  operationDelayMs: number;
  /** Vault label used in error messages. */
  vaultName: string;
  now?: () => number;
}

export interface Found<V extends VersionBase> {
  record: ObjectRecord<V>;
  version: V;
}

export interface UpdateInput {
  tags?: Record<string, string> | null;
  attributes: AttributesInput;
}

const keyOf = (name: string) => name.toLowerCase();
export const seconds = (ms: number) => Math.floor(ms / 1000);
export const newVersionId = () => randomBytes(16).toString('hex');

/**
 * The in-memory state of one kind of object in one vault: records keyed by lower-cased name, each
 * either active or soft-deleted, with Azure's lifecycle (versions, soft delete and its pending
 * period, recover, purge, retention, backup/restore). Secrets and keys add what creates a version.
 * Pure domain logic; HTTP rendering and persistence live elsewhere.
 */
export class VaultObjectStore<V extends VersionBase> {
  private readonly records = new Map<string, ObjectRecord<V>>();
  /**
   * Names purged less than `operationDelayMs` ago (lower-cased → until when): Azure completes a purge
   * asynchronously, and the name cannot be re-created or restored meanwhile (409). In memory only.
   */
  private readonly purging = new Map<string, number>();
  protected readonly now: () => number;
  private listeners: Array<(name?: string) => void> = [];
  private changes = 0;

  constructor(
    readonly kind: ObjectKind,
    readonly options: ObjectStoreOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Called after every mutation with the object's name (none: any object may have changed); persistence hooks in here. */
  onChange(listener: (name?: string) => void): void {
    this.listeners.push(listener);
  }

  get recoveryLevel(): string {
    const customized = this.options.softDeleteRetentionDays < 90 ? 'Customized' : '';
    return this.options.purgeProtection ? `${customized}Recoverable` : `${customized}Recoverable+Purgeable`;
  }

  get recoverableDays(): number {
    return this.options.softDeleteRetentionDays;
  }

  /** Adds a new current version (creating the record); refused while the name is deleted or pending. */
  protected addVersion(name: string, version: V): Found<V> {
    const existing = this.lookup(name);
    this.assertWritable(existing, name);
    const record: ObjectRecord<V> = existing ?? { name, versions: [], state: 'active', visibleAt: 0 };
    record.versions.push(version);
    if (!existing) this.records.set(keyOf(name), record);
    this.changed(record.name);
    return { record, version };
  }

  /** Throws Azure's 409s for a name that is soft-deleted or in a delete/recover pending period. */
  protected assertWritable(existing: ObjectRecord<V> | undefined, name?: string): void {
    const now = this.now();
    if (!existing) {
      if (name !== undefined) this.assertNotPurging(name, now);
      return;
    }
    if (existing.state === 'deleted') {
      throw existing.visibleAt > now ? errors.beingDeletedNoRecreate(this.kind, existing.name) : errors.deletedButRecoverable(this.kind, existing.name);
    }
    if (existing.visibleAt > now) throw errors.beingRecovered(this.kind, existing.name);
  }

  /** Common attributes of a new version. */
  protected baseVersion(input: UpdateInput): VersionBase {
    const t = seconds(this.now());
    const v: VersionBase = { version: newVersionId(), enabled: input.attributes.enabled ?? true, created: t, updated: t };
    if (input.tags) v.tags = { ...input.tags };
    if (input.attributes.nbf !== undefined) v.nbf = input.attributes.nbf;
    if (input.attributes.exp !== undefined) v.exp = input.attributes.exp;
    return v;
  }

  /** Latest (version undefined or '') or a specific version of an active object. Throws 404/403. */
  get(name: string, version?: string, opts: { requireEnabled?: boolean } = {}): Found<V> {
    const record = this.active(name);
    const found = this.findVersion(record, name, version);
    if (opts.requireEnabled && !found.version.enabled) throw errors.disabled(this.kind, 'get');
    return found;
  }

  /** Updates attributes and tags of a version; `apply` changes kind-specific fields in the same step. */
  update(name: string, version: string | undefined, input: UpdateInput, apply?: (v: V) => void): Found<V> {
    const found = this.get(name, version);
    const v = found.version;
    if (input.attributes.enabled !== undefined) v.enabled = input.attributes.enabled;
    if (input.attributes.nbf !== undefined) v.nbf = input.attributes.nbf;
    if (input.attributes.exp !== undefined) v.exp = input.attributes.exp;
    if (input.tags !== undefined) {
      if (input.tags === null) delete v.tags;
      else v.tags = { ...input.tags };
    }
    apply?.(v);
    v.updated = seconds(this.now());
    this.changed(found.record.name);
    return found;
  }

  /** Active, visible objects sorted by lower-cased name. */
  listActive(): ObjectRecord<V>[] {
    return this.visible('active');
  }

  /** Versions of an active object sorted by version id (Azure's order); [] for an unknown name. */
  listVersions(name: string): { record?: ObjectRecord<V>; versions: V[] } {
    const record = this.lookup(name);
    if (!record || record.state !== 'active' || record.visibleAt > this.now()) return { versions: [] };
    return { record, versions: [...record.versions].sort((a, b) => (a.version < b.version ? -1 : 1)) };
  }

  delete(name: string): ObjectRecord<V> {
    const record = this.active(name);
    const now = this.now();
    record.state = 'deleted';
    record.deletedDate = seconds(now);
    record.scheduledPurgeDate = record.deletedDate + this.options.softDeleteRetentionDays * 86400;
    record.visibleAt = now + this.options.operationDelayMs;
    this.changed(record.name);
    return record;
  }

  getDeleted(name: string): ObjectRecord<V> {
    const record = this.lookup(name);
    if (!record || record.state !== 'deleted' || record.visibleAt > this.now()) throw errors.deletedNotFound(this.kind, name);
    return record;
  }

  /** Deleted, visible objects sorted by lower-cased name. */
  listDeleted(): ObjectRecord<V>[] {
    this.purgeExpired();
    return this.visible('deleted');
  }

  recover(name: string): ObjectRecord<V> {
    // The service answers a name with no deleted object (live, or never used) with the not-found of a GET of the
    // object, not GET /deleted…'s "Deleted Key not found" (recorded answers of the SDKs' recover tests).
    if (this.lookup(name)?.state !== 'deleted') throw errors.notFound(this.kind, name);
    const record = this.getDeleted(name);
    record.state = 'active';
    delete record.deletedDate;
    delete record.scheduledPurgeDate;
    record.visibleAt = this.now() + this.options.operationDelayMs;
    this.changed(record.name);
    return record;
  }

  purge(name: string): void {
    const pending = this.lookup(name);
    // Right after a delete, before it completed: Azure answers 409, not 404.
    if (pending?.state === 'deleted' && pending.visibleAt > this.now()) throw errors.beingDeleted(this.kind);
    const record = this.getDeleted(name);
    if (this.options.purgeProtection) throw errors.purgeProtected(this.options.vaultName);
    this.records.delete(keyOf(record.name));
    if (this.options.operationDelayMs > 0) this.purging.set(keyOf(record.name), this.now() + this.options.operationDelayMs);
    this.changed(record.name);
  }

  /** 409 while a purge of `name` is still completing (see `purging`). */
  private assertNotPurging(name: string, now: number): void {
    if (this.isPurging(name, now)) throw errors.beingDeletedNoRecreate(this.kind, name);
  }

  /** Whether a purge of `name` is still completing (forgets one that has completed). */
  private isPurging(name: string, now: number): boolean {
    const until = this.purging.get(keyOf(name));
    if (until === undefined) return false;
    if (until > now) return true;
    this.purging.delete(keyOf(name));
    return false;
  }

  /** The record to back up (all versions). Throws 404, or 400 beyond 500 versions. */
  backup(name: string): ObjectRecord<V> {
    const record = this.active(name);
    if (record.versions.length > MAX_BACKUP_VERSIONS) throw errors.tooManyVersionsForBackup(this.kind, record.name, record.versions.length);
    return record;
  }

  /** Restores a backup's versions under its name; `idOfLatest` (the backup's latest version's id) names it in a conflict. */
  restore(backup: { name: string; versions: V[] }, idOfLatest: string): ObjectRecord<V> {
    const existing = this.lookup(backup.name);
    const now = this.now();
    // While its purge (recorded) or its delete (azure-sdk-for-python #17630) completes, the service answers a restore as
    // over a live name: 409, no inner code. Once soft-deleted, ObjectIsDeletedButRecoverable here (unverified).
    if (!existing && this.isPurging(backup.name, now)) throw errors.restoreConflict(this.kind, idOfLatest);
    if (existing) {
      if (existing.state === 'deleted' && existing.visibleAt <= now) throw errors.deletedButRecoverable(this.kind, existing.name);
      throw errors.restoreConflict(this.kind, idOfLatest);
    }
    const record: ObjectRecord<V> = {
      name: backup.name,
      versions: backup.versions.map((v) => ({ ...v, tags: v.tags ? { ...v.tags } : undefined })),
      state: 'active',
      visibleAt: 0,
    };
    for (const v of record.versions) if (v.tags === undefined) delete v.tags;
    this.records.set(keyOf(record.name), record);
    this.changed(record.name);
    return record;
  }

  /** Purges soft-deleted objects whose scheduled purge date has passed. Returns how many. */
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

  /** The record under `name` as stored (deleted or not, no purge on the way), for persistence. */
  peek(name: string): ObjectRecord<V> | undefined {
    return this.records.get(keyOf(name));
  }

  /** All records, for persistence. */
  all(): IterableIterator<ObjectRecord<V>> {
    return this.records.values();
  }

  /** Replaces the state (used when loading from disk); does not notify listeners. */
  load(records: ObjectRecord<V>[]): void {
    this.records.clear();
    for (const r of records) this.records.set(keyOf(r.name), { ...r, visibleAt: 0 });
  }

  get size(): number {
    return this.records.size;
  }

  protected lookup(name: string): ObjectRecord<V> | undefined {
    const record = this.records.get(keyOf(name));
    if (record && record.state === 'deleted' && record.scheduledPurgeDate !== undefined && record.scheduledPurgeDate <= seconds(this.now())) {
      this.records.delete(keyOf(name));
      this.changed(name);
      return undefined;
    }
    return record;
  }

  protected active(name: string): ObjectRecord<V> {
    const record = this.lookup(name);
    if (!record || record.state !== 'active' || record.visibleAt > this.now()) throw errors.notFound(this.kind, name);
    return record;
  }

  private visible(state: 'active' | 'deleted'): ObjectRecord<V>[] {
    const now = this.now();
    return [...this.records.entries()]
      .filter(([, r]) => r.state === state && r.visibleAt <= now)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, r]) => r);
  }

  private findVersion(record: ObjectRecord<V>, name: string, version?: string): Found<V> {
    if (!version) return { record, version: latestVersion(record) };
    const v = record.versions.find((x) => x.version === version.toLowerCase());
    if (!v) throw errors.notFound(this.kind, `${name}/${version}`);
    return { record, version: v };
  }

  /** How many changes this store has seen: a request that moved it has something to make durable. */
  get changeCount(): number {
    return this.changes;
  }

  protected changed(name?: string): void {
    this.changes++;
    for (const l of this.listeners) l(name);
  }
}
