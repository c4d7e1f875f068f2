import { createHash, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuditAction, auditErrorCode, AuditEventInput, AuditResult, AuditService } from '@app/audit';
import { Clock, CredentialVaultError, describeError, OperationContext } from '@app/common';
import { ReadAuditCoalescer } from './audit/read-audit-coalescer';
import { CredentialCache } from './cache/credential-cache';
import { CredentialExpiryTransition } from './credential-expiry.transition';
import { CredentialStatus } from './credential-type';
import type { CredentialMetadata, CredentialVersionWithValue, CredentialWithValue, ReadOptions } from './credential.types';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from './credentials.constants';
import type { ResolvedCredentialsOptions } from './credentials.options';
import type { CredentialEntity } from './entities/credential.entity';
import { CredentialExpiredError, CredentialRevokedError, CredentialVersionNotFoundError } from './errors/credential-errors';
import { CredentialEventPublisher } from './events/credential-event-publisher';
import { cacheKey, detailsOf, ownerOf, pointerOf, readDetailsOf, toMetadata, toVersionInfo } from './internal/credential-view';
import { assertContext, failureResult, loadLive, neverSent, recordableId } from './internal/guards';
import { type PackedRead, packRead, UNPACKED_READS, unpackRead, UnpackedReads } from './internal/packed-read';
import { CredentialRepository } from './persistence/credential.repository';
import { CredentialVersionRepository } from './persistence/credential-version.repository';
import { CredentialsPersistence } from './persistence/credentials-persistence';
import { ValueStores } from './stores/value-stores';
import { assertPositiveInt, MAX_VERSION_NUMBER } from './validation/identifiers';

/**
 * One read of a credential's current value: the value, its row, and the audit details of a read
 * (frozen: the audit lib then sanitises and canonicalises them once for every read of this entry).
 * The cache holds it packed (internal/packed-read); the last ones read are kept unpacked.
 */
interface CurrentRead {
  value: string;
  row: CredentialEntity;
  auditDetails: Record<string, unknown>;
}

const STALE_OPTIONS = { isServeStaleError };

/**
 * Reads values: the current one through the cache (single-flight misses — a reader who leaves stops
 * waiting, and the shared load is aborted once every reader of it has left —, bounded serve-stale for
 * transient value-store errors) and older versions uncached. Every read is audited and refused when
 * the credential is revoked, or expired unless the caller opts in — cache hits included. The first
 * read refused because an `active` credential's expiry passed stores the `expired` status and raises
 * `credential.expired` (CredentialExpiryTransition: once per credential version); only that refused
 * path writes — a served read never does.
 */
@Injectable()
export class CredentialReader {
  private readonly logger = new Logger(CredentialReader.name);
  private readonly expiry: CredentialExpiryTransition;
  private readonly unpacked = new UnpackedReads<CurrentRead>(UNPACKED_READS, (packed) => {
    const { value, row } = unpackRead(packed);
    return { value, row, auditDetails: readDetailsOf(row) };
  });

  constructor(
    private readonly rows: CredentialRepository,
    private readonly versions: CredentialVersionRepository,
    private readonly stores: ValueStores,
    private readonly readAudit: ReadAuditCoalescer,
    private readonly cache: CredentialCache,
    private readonly events: CredentialEventPublisher,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) private readonly options: ResolvedCredentialsOptions,
    persistence: CredentialsPersistence,
    audit: AuditService,
  ) {
    this.expiry = new CredentialExpiryTransition({ runner: persistence.runner, outbox: persistence.outbox, rows, audit, cache, clock });
    cache.onDrop((key) => this.unpacked.forget(key));
  }

  /** See `CredentialsService.get`. */
  async get(ctx: OperationContext, id: string, options: ReadOptions = {}): Promise<CredentialWithValue> {
    const started = Date.now();
    assertContext(ctx);
    let read: CurrentRead | undefined;
    try {
      if (this.options.cache.enabled) {
        const key = cacheKey(ctx.tenantId, id);
        read = this.unpacked.get(key, await this.cache.getOrLoad(key, (signal) => this.loadPacked(key, ctx.tenantId, id, signal), STALE_OPTIONS, ctx));
      } else {
        read = await this.loadCurrent(ctx.tenantId, id, ctx.signal);
      }
      this.assertServable(read.row, read.row.expiresAt, options);
    } catch (e) {
      if (e instanceof CredentialExpiredError && read) await this.noticeExpired(read.row, ctx);
      if (!neverSent(e)) await this.auditRead(ctx, recordableId(id), failureResult(e), started, auditErrorCode(e));
      throw e;
    }
    await this.auditRead(ctx, read.row.id, AuditResult.SUCCESS, started, undefined, read.auditDetails);
    this.events.read(ctx, read.row);
    return { value: read.value, metadata: toMetadata(read.row, this.clock.nowMs()) };
  }

  /** See `CredentialsService.getVersion`. */
  async getVersion(ctx: OperationContext, id: string, version: number, options: ReadOptions = {}): Promise<CredentialVersionWithValue> {
    const started = Date.now();
    assertContext(ctx);
    try {
      assertPositiveInt(version, 'version');
      if (version > MAX_VERSION_NUMBER) throw new CredentialVersionNotFoundError(id, version);
      const row = await loadLive(this.rows, ctx.tenantId, id);
      const v = await this.versions.find(ctx.tenantId, id, version);
      if (!v) throw new CredentialVersionNotFoundError(id, version);
      // Withdrawn by a revoke: never served again, even once a rotation made the credential active.
      if (v.revokedAt) throw new CredentialRevokedError(row.id, `Version ${version} of credential ${row.id} was revoked; its value is not served`);
      // A stored `expired` status speaks of the current version; an older one is judged by its own expiry.
      const status = v.version === row.currentVersion || row.status !== CredentialStatus.EXPIRED ? row.status : CredentialStatus.ACTIVE;
      try {
        this.assertServable({ id: row.id, status }, v.expiresAt, options);
      } catch (e) {
        if (e instanceof CredentialExpiredError && v.version === row.currentVersion) await this.noticeExpired(row, ctx);
        throw e;
      }
      const value = await this.stores.of(v.valueStore).read(ownerOf(row), pointerOf(v), { signal: ctx.signal });
      await this.auditRead(ctx, row.id, AuditResult.SUCCESS, started, undefined, { ...detailsOf(row), version });
      this.events.read(ctx, row, version);
      return { value, version: toVersionInfo(v, row), metadata: toMetadata(row, this.clock.nowMs()) };
    } catch (e) {
      if (!neverSent(e)) await this.auditRead(ctx, recordableId(id), failureResult(e), started, auditErrorCode(e), { version });
      throw e;
    }
  }

  /**
   * See `CredentialsService.verifyValue`: the current value compared with `expected` inside the lib
   * (digests, constant time), never returned. Not audited, not cached, no event: for a caller whose own
   * audit row covers the check (the migration's MIGRATE row). Expired values are compared too.
   * `readOnly`: no lazy re-wrap or re-encryption on the way (`ValueReadOptions.readOnly`). `ctx.signal` aborts the
   * value read as it does a `get`'s (CANCELLED).
   */
  async verifyValue(ctx: OperationContext, id: string, expected: string, options: { readOnly?: boolean } = {}): Promise<{ matches: boolean; metadata: CredentialMetadata }> {
    assertContext(ctx);
    // The caller's signal (uncached, so the read is its alone): an aborted caller stops waiting at once. The migration
    // passes none yet (its context has no signal), so its comparisons still run to their end.
    const read = await this.loadCurrent(ctx.tenantId, id, ctx.signal, options.readOnly === true);
    const digest = (v: string) => createHash('sha256').update(v, 'utf8').digest();
    return { matches: typeof expected === 'string' && timingSafeEqual(digest(read.value), digest(expected)), metadata: toMetadata(read.row, this.clock.nowMs()) };
  }

  /** What the cache keeps: the read packed; it is also remembered unpacked, as the first read uses it. */
  private async loadPacked(key: string, tenantId: string, id: string, signal?: AbortSignal): Promise<PackedRead> {
    const read = await this.loadCurrent(tenantId, id, signal);
    const packed = packRead(read.value, read.row);
    this.unpacked.remember(key, packed, read);
    return packed;
  }

  /**
   * `signal`: the caller's, when the load is its alone; the cache load's, when readers share it (aborted only once
   * every one of them has left); none for a read no caller waits on.
   */
  private async loadCurrent(tenantId: string, id: string, signal?: AbortSignal, readOnly = false): Promise<CurrentRead> {
    const row = await loadLive(this.rows, tenantId, id);
    // Never fetch a revoked value: its Key Vault versions are disabled, and the answer must be REVOKED.
    if (row.status === CredentialStatus.REVOKED) throw new CredentialRevokedError(row.id);
    const v = await this.versions.find(tenantId, id, row.currentVersion);
    if (!v) throw new CredentialVersionNotFoundError(id, row.currentVersion);
    const value = await this.stores.of(v.valueStore).read(ownerOf(row), pointerOf(v), { signal, readOnly });
    return { value, row, auditDetails: readDetailsOf(row) };
  }

  /**
   * Revoked: never served. Expired (a stored `expired` status, or `expiresAt` reached): served only
   * with `allowExpired`. `row.status` is the credential's; `expiresAt` that of the version being read.
   */
  private assertServable(row: Pick<CredentialEntity, 'id' | 'status'>, expiresAt: Date | null, options: ReadOptions): void {
    if (row.status === CredentialStatus.REVOKED) throw new CredentialRevokedError(row.id);
    if (options.allowExpired === true) return;
    const passed = expiresAt !== null && expiresAt.getTime() <= this.clock.nowMs();
    if (row.status === CredentialStatus.EXPIRED || passed) throw new CredentialExpiredError(row.id, passed ? expiresAt : null);
  }

  /** A refused read of an `active` credential past its expiry: the once-per-version transition (never throws). */
  private async noticeExpired(row: CredentialEntity, ctx: OperationContext): Promise<void> {
    if (this.expiry.due(row, this.clock.nowMs())) await this.expiry.fromRead(row, ctx);
  }

  /** Success: awaited by the caller, so a failing audit (fail-closed) fails the read. Failure: best effort. */
  private auditRead(ctx: OperationContext, resource: string, result: AuditResult, started: number, code?: string, details?: Record<string, unknown>): Promise<void> {
    const event: AuditEventInput = { action: AuditAction.READ, context: ctx, resource, result, errorCode: code, durationMs: Date.now() - started, details };
    if (result === AuditResult.SUCCESS) return this.readAudit.record(event);
    return this.auditReadFailure(event);
  }

  private async auditReadFailure(event: AuditEventInput): Promise<void> {
    const resource = event.resource;
    try {
      await this.readAudit.record(event);
    } catch (e) {
      this.logger.warn(`could not audit a failed read of ${resource}: ${describeError(e)}`);
    }
  }
}

function isServeStaleError(e: unknown): boolean {
  return e instanceof CredentialVaultError && e.retryable;
}
