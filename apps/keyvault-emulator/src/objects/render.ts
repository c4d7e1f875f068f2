import { hasRecoverableDays } from '../http/api-version';
import { OperationName } from '../http/router';
import { ObjectRecord, VersionBase } from './model';
import { decodeSkipToken, encodeSkipToken } from './paging';
import { VaultObjectStore } from './store';

export interface ApiRequest<Op extends OperationName = OperationName> {
  operation: Op;
  name?: string;
  version?: string;
  query: URLSearchParams;
  apiVersion: string;
  /** Parsed JSON body ({} when empty). */
  body: Record<string, unknown>;
  /** `https://<Host header>` when the client sent a plain host name: next links point where the client called. */
  origin?: string;
}

export interface ApiResponse {
  status: number;
  body?: unknown;
}

export function ok(body: unknown): ApiResponse {
  return { status: 200, body };
}

export function skipTokenOf(query: URLSearchParams): string | undefined {
  const token = query.get('$skiptoken');
  return token ? decodeSkipToken(token) : undefined;
}

/** Same layout as Azure: `<vault><path>?api-version=X&$skiptoken=<token>&maxresults=N` (the token is base64url), or null on the last page. */
export function nextLink(vaultUrl: string, path: string, apiVersion: string, pageSize: number, marker: string | undefined): string | null {
  if (marker === undefined) return null;
  return `${vaultUrl}${path}?api-version=${encodeURIComponent(apiVersion)}&$skiptoken=${encodeSkipToken(marker)}&maxresults=${pageSize}`;
}

/** The attributes every secret and key version reports at `apiVersion` (keys add their own after these). */
export function baseAttributes(v: VersionBase, store: VaultObjectStore<VersionBase>, apiVersion: string): Record<string, unknown> {
  const a: Record<string, unknown> = { enabled: v.enabled };
  if (v.nbf !== undefined) a.nbf = v.nbf;
  if (v.exp !== undefined) a.exp = v.exp;
  a.created = v.created;
  a.updated = v.updated;
  a.recoveryLevel = store.recoveryLevel;
  if (hasRecoverableDays(apiVersion)) a.recoverableDays = store.recoverableDays;
  return a;
}

/** `recoveryId`, `deletedDate`, `scheduledPurgeDate` of a soft-deleted object (`collection`: deletedsecrets / deletedkeys). */
export function deletedFields(vaultUrl: string, collection: string, record: ObjectRecord<VersionBase>) {
  return {
    recoveryId: `${vaultUrl}/${collection}/${record.name}`,
    deletedDate: record.deletedDate,
    scheduledPurgeDate: record.scheduledPurgeDate,
  };
}
