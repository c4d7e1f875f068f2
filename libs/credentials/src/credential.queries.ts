import { Inject, Injectable } from '@nestjs/common';
import { boundedList, type BoundedList, Clock, foldUuid, isCursorInstant, isCursorUuid, OperationContext, readPageCursor, UUID_PATTERN, writePageCursor } from '@app/common';
import { CredentialCache } from './cache/credential-cache';
import { ConnectionStatus, CredentialStatus } from './credential-type';
import type {
  ConnectionView,
  CredentialMetadata,
  CredentialPage,
  CredentialStatistics,
  CredentialVersionInfo,
  InternalCredentialsOption,
  ListByLastChangeQuery,
  ListCredentialsQuery,
  MetadataReadOptions,
} from './credential.types';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from './credentials.constants';
import type { ResolvedCredentialsOptions } from './credentials.options';
import type { CredentialEntity } from './entities/credential.entity';
import { CredentialValidationError } from './errors/credential-errors';
import { cacheKey, effectiveStatus, toMetadata, toMetadataOfFresh, toVersionInfo } from './internal/credential-view';
import { assertContext, checkedStatus, checkedType, loadLive } from './internal/guards';
import { isReservedConnectionId } from './internal-credentials';
import { type PackedRead, packRow, UNPACKED_READS, UnpackedReads, unpackRow } from './internal/packed-read';
import { maskFromHint } from './masking';
import { CredentialRepository } from './persistence/credential.repository';
import { CredentialListRepository } from './persistence/credential-list.repository';
import { CredentialVersionRepository } from './persistence/credential-version.repository';
import { CredentialsPersistence } from './persistence/credentials-persistence';
import { assertDate, assertIdentifier } from './validation/identifiers';

const DAY_MS = 86_400_000;

/** Metadata reads of one tenant: never a value, never the value store. */
@Injectable()
export class CredentialQueries {
  /** The last cached rows unpacked (internal/packed-read). */
  private readonly unpackedRows = new UnpackedReads<CredentialEntity>(UNPACKED_READS, unpackRow);

  constructor(
    private readonly rows: CredentialRepository,
    private readonly lists: CredentialListRepository,
    private readonly versions: CredentialVersionRepository,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) private readonly options: ResolvedCredentialsOptions,
    private readonly cache: CredentialCache,
    private readonly persistence: CredentialsPersistence,
  ) {
    cache.onDrop((key) => this.unpackedRows.forget(key));
  }

  /** See `CredentialsService.getMetadata`. */
  async getMetadata(ctx: OperationContext, id: string, options: MetadataReadOptions = {}): Promise<CredentialMetadata> {
    assertContext(ctx);
    if (options.cached === true && this.options.cache.enabled && !this.persistence.runner.inTransaction()) {
      // Kept packed, as value reads are; a shared row: the view copies its Dates and tags. Not-found is
      // never cached (the loader throws).
      const key = cacheKey(ctx.tenantId, id);
      const packed = await this.cache.getOrLoadRow(key, () => this.loadPackedRow(key, ctx.tenantId, id));
      return toMetadata(this.unpackedRows.get(key, packed), this.clock.nowMs());
    }
    return toMetadataOfFresh(await loadLive(this.rows, ctx.tenantId, id), this.clock.nowMs());
  }

  private async loadPackedRow(key: string, tenantId: string, id: string): Promise<PackedRead> {
    const row = await loadLive(this.rows, tenantId, id);
    const packed = packRow(row);
    this.unpackedRows.remember(key, packed, row);
    return packed;
  }

  /** See `CredentialsService.listVersions`. */
  async listVersions(ctx: OperationContext, id: string): Promise<CredentialVersionInfo[]> {
    assertContext(ctx);
    const row = await loadLive(this.rows, ctx.tenantId, id);
    const versions = await this.versions.list(ctx.tenantId, id);
    return versions.map((v) => toVersionInfo(v, row));
  }

  /** See `CredentialsService.list`. */
  async list(ctx: OperationContext, query: ListCredentialsQuery = {}): Promise<CredentialPage> {
    assertContext(ctx);
    const limit = query.limit ?? this.options.defaultPageSize;
    if (!Number.isInteger(limit) || limit < 1 || limit > this.options.maxPageSize) {
      throw new CredentialValidationError(`limit must be an integer in 1..${this.options.maxPageSize}`, 'limit');
    }
    if (query.integrationId !== undefined) assertIdentifier(query.integrationId, 'integrationId');
    if (query.connectionId !== undefined) assertIdentifier(query.connectionId, 'connectionId');
    const type = query.type === undefined ? undefined : checkedType(query.type);
    if (query.expiringBefore !== undefined) assertDate(query.expiringBefore, 'expiringBefore');
    const status = query.status === undefined ? undefined : checkedStatus(query.status);
    // Naming an internal connection is asking for it: unless told `includeInternal: false`.
    const includeInternal = assertIncludeInternal(query) || (query.includeInternal === undefined && query.connectionId !== undefined && isReservedConnectionId(query.connectionId));
    const cursor = query.cursor !== undefined ? decodeCursor(query.cursor) : undefined;
    const now = this.clock.nowMs();
    const rows = await this.lists.page(ctx.tenantId, {
      integrationId: query.integrationId || undefined,
      connectionId: query.connectionId || undefined,
      type,
      expiringBeforeMs: query.expiringBefore ? query.expiringBefore.getTime() : undefined,
      status,
      after: cursor ? { createdAtMs: cursor.createdAt, id: cursor.id } : undefined,
      includeInternal,
      nowMs: now,
      limit: limit + 1,
    });
    return toPage(rows, limit, now, (last) => encodeCursor(last.createdAt.getTime(), last.id));
  }

  /** See `CredentialsService.listByLastChange`. */
  async listByLastChange(ctx: OperationContext, query: ListByLastChangeQuery): Promise<CredentialPage> {
    assertContext(ctx);
    const { limit } = query;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_BY_LAST_CHANGE) throw new CredentialValidationError(`limit must be an integer in 1..${MAX_LIST_BY_LAST_CHANGE}`, 'limit');
    if (!Array.isArray(query.types) || query.types.length === 0) throw new CredentialValidationError('types must name at least one credential type', 'types');
    const types = [...new Set(query.types.map((t) => checkedType(t)))];
    if (query.integrationId !== undefined) assertIdentifier(query.integrationId, 'integrationId');
    const list = (values: string[] | undefined, field: string, check: (v: string) => string) => {
      if (values === undefined) return undefined;
      if (!Array.isArray(values) || values.length > MAX_LIST_BY_LAST_CHANGE) throw new CredentialValidationError(`${field} must be a list of at most ${MAX_LIST_BY_LAST_CHANGE}`, field);
      return values.map(check);
    };
    const excludeIntegrationIds = list(query.excludeIntegrationIds, 'excludeIntegrationIds', (v) => (assertIdentifier(v, 'excludeIntegrationIds'), v));
    const ids = list(query.ids, 'ids', (v) => checkedId(v, 'ids'));
    const excludeIds = list(query.excludeIds, 'excludeIds', (v) => checkedId(v, 'excludeIds'));
    if (query.changedAtOrBefore !== undefined) assertDate(query.changedAtOrBefore, 'changedAtOrBefore');
    const after = query.cursor !== undefined ? decodeLastChangeCursor(query.cursor) : undefined;
    const now = this.clock.nowMs();
    const rows = await this.lists.pageByLastChange(ctx.tenantId, {
      types,
      integrationId: query.integrationId,
      excludeIntegrationIds,
      ids,
      excludeIds,
      changedAtOrBeforeMs: query.changedAtOrBefore?.getTime(),
      after,
      nowMs: now,
      limit: limit + 1,
    });
    return toPage(rows, limit, now, (last) => writePageCursor([(last.rotatedAt ?? last.createdAt).getTime(), last.createdAt.getTime(), last.id]));
  }

  /** See `CredentialsService.listExpiringBounded` (and `listExpiring`, its items alone). */
  async listExpiring(ctx: OperationContext, days: number, limit = 500, options: InternalCredentialsOption = {}): Promise<BoundedList<CredentialMetadata>> {
    assertContext(ctx);
    const includeInternal = assertIncludeInternal(options);
    if (typeof days !== 'number' || !Number.isFinite(days) || days < 0) throw new CredentialValidationError('days must be a number ≥ 0', 'days');
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new CredentialValidationError('limit must be an integer in 1..10000', 'limit');
    const now = this.clock.nowMs();
    // One row past the limit tells the list was cut (`truncated`), without a count.
    const { items, truncated } = boundedList(await this.lists.expiring(ctx.tenantId, now + days * DAY_MS, limit + 1, includeInternal), limit);
    return { items: items.map((r) => toMetadataOfFresh(r, now)), truncated };
  }

  /** See `CredentialsService.statistics`. */
  async statistics(ctx: OperationContext, options: InternalCredentialsOption = {}): Promise<CredentialStatistics> {
    assertContext(ctx);
    const includeInternal = assertIncludeInternal(options);
    return this.lists.statistics(ctx.tenantId, this.clock.now().getTime(), includeInternal);
  }

  /** See `CredentialsService.listConnections`. */
  async listConnections(ctx: OperationContext, options: { integrations?: string[] } & InternalCredentialsOption = {}): Promise<ConnectionView[]> {
    assertContext(ctx);
    const known = options.integrations ?? this.options.integrations;
    known.forEach((i) => assertIdentifier(i, 'integrations'));
    const rows = await this.lists.connectionRows(ctx.tenantId, assertIncludeInternal(options));
    const groups = new Map<string, CredentialEntity[]>();
    for (const r of rows) {
      const k = JSON.stringify([r.integrationId, r.connectionId]);
      groups.set(k, [...(groups.get(k) ?? []), r]);
    }
    const now = this.clock.nowMs();
    const views: ConnectionView[] = [];
    for (const members of groups.values()) {
      const creds = members.map((r) => ({ id: r.id, type: r.type, status: effectiveStatus(r, now), maskedValue: maskFromHint(r.valueHint), expiresAt: r.expiresAt }));
      const statuses = creds.map((c) => c.status);
      const status = statuses.includes(CredentialStatus.REVOKED)
        ? ConnectionStatus.REVOKED
        : statuses.includes(CredentialStatus.NEEDS_REAUTH)
          ? ConnectionStatus.NEEDS_REAUTH
          : statuses.every((s) => s === CredentialStatus.EXPIRED)
            ? ConnectionStatus.EXPIRED
            : ConnectionStatus.CONNECTED;
      const expiries = members.map((r) => r.expiresAt?.getTime()).filter((t): t is number => t !== undefined);
      views.push({
        integrationId: members[0].integrationId,
        connectionId: members[0].connectionId,
        status,
        expiresAt: expiries.length ? new Date(Math.min(...expiries)) : null,
        updatedAt: new Date(Math.max(...members.map((r) => r.updatedAt.getTime()))),
        credentials: creds,
      });
    }
    const connected = new Set(views.map((v) => v.integrationId));
    for (const integrationId of known) {
      if (!connected.has(integrationId)) {
        views.push({ integrationId, connectionId: null, status: ConnectionStatus.NOT_CONFIGURED, expiresAt: null, updatedAt: null, credentials: [] });
      }
    }
    return views.sort((a, b) => a.integrationId.localeCompare(b.integrationId) || (a.connectionId ?? '').localeCompare(b.connectionId ?? ''));
  }
}

function assertIncludeInternal({ includeInternal }: InternalCredentialsOption): boolean {
  if (includeInternal !== undefined && typeof includeInternal !== 'boolean') throw new CredentialValidationError('includeInternal must be true or false', 'includeInternal');
  return includeInternal === true;
}

function encodeCursor(createdAt: number, id: string): string {
  return writePageCursor([createdAt, id]);
}

/** A page of `limit` from rows read one past it: a next cursor, from its last row, only when that one more came. */
function toPage(rows: CredentialEntity[], limit: number, now: number, cursorOf: (last: CredentialEntity) => string): CredentialPage {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { items: page.map((r) => toMetadataOfFresh(r, now)), nextCursor: rows.length > limit && last ? cursorOf(last) : undefined };
}

/** The longest id list and page `listByLastChange` takes. */
export const MAX_LIST_BY_LAST_CHANGE = 10_000;

/** A credential id as the rows keep it (lower case), or a validation error naming `field`. */
function checkedId(id: string, field: string): string {
  if (typeof id !== 'string' || !UUID_PATTERN.test(id)) throw new CredentialValidationError(`${field} must hold credential ids (UUIDs)`, field);
  return foldUuid(id);
}

/** What `listByLastChange` writes as nextCursor: (last change, createdAt, id), else a validation error. */
function decodeLastChangeCursor(cursor: string): { changedAtMs: number; createdAtMs: number; id: string } {
  const v = readPageCursor(cursor);
  if (Array.isArray(v) && v.length === 3 && isCursorInstant(v[0]) && isCursorInstant(v[1]) && isCursorUuid(v[2])) return { changedAtMs: v[0], createdAtMs: v[1], id: v[2] };
  throw new CredentialValidationError('cursor is not one a list answered as nextCursor: pass nextCursor back unchanged, or leave cursor out for the first page', 'cursor');
}

function decodeCursor(cursor: string): { createdAt: number; id: string } {
  const v = readPageCursor(cursor);
  // Exactly what encodeCursor writes: an upper-case id sorts before its row in SQLite (the row again on the
  // next page), an instant no Date holds gave an empty page, and PostgreSQL refuses a fraction (a 500).
  if (Array.isArray(v) && v.length === 2 && isCursorInstant(v[0]) && isCursorUuid(v[1])) return { createdAt: v[0], id: v[1] };
  throw new CredentialValidationError('cursor is not one a list answered as nextCursor: pass nextCursor back unchanged, or leave cursor out for the first page', 'cursor');
}
