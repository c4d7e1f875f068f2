import { errors } from '../errors';
import { OperationName } from '../http/router';
import { decodeBackup, encodeBackup } from './backup';
import { SecretRecord, SecretVersionRecord, latestVersion } from './model';
import { decodeSkipToken, encodeSkipToken, paginate, parseMaxResults } from './paging';
import { SecretStore } from './store';
import { assertContentType, assertSecretName, assertTags, assertValue, parseAttributes } from './validation';

export interface ApiRequest {
  operation: OperationName;
  name?: string;
  version?: string;
  query: URLSearchParams;
  apiVersion: string;
  /** Parsed JSON body ({} when empty). */
  body: Record<string, unknown>;
}

export interface ApiResponse {
  status: number;
  body?: unknown;
}

/** Renders store records in the Key Vault REST shapes and implements each secrets operation. */
export class SecretsApi {
  constructor(
    private readonly store: SecretStore,
    private readonly vaultUrl: string,
  ) {}

  handle(req: ApiRequest): ApiResponse {
    if (req.name !== undefined) assertSecretName(req.name);
    switch (req.operation) {
      case 'setSecret':
        return this.setSecret(req);
      case 'getSecret': {
        const { record, version } = this.store.get(req.name!, req.version, { requireEnabled: true });
        return ok(this.bundle(record, version, true));
      }
      case 'updateSecret':
        return this.updateSecret(req);
      case 'listSecrets':
        return ok(this.listSecrets(req));
      case 'listSecretVersions':
        return ok(this.listVersions(req));
      case 'deleteSecret':
        return ok(this.deletedBundle(this.store.delete(req.name!)));
      case 'getDeletedSecret':
        return ok(this.deletedBundle(this.store.getDeleted(req.name!)));
      case 'listDeletedSecrets':
        return ok(this.listDeleted(req));
      case 'recoverDeletedSecret': {
        const record = this.store.recover(req.name!);
        return ok(this.bundle(record, latestVersion(record), false));
      }
      case 'purgeDeletedSecret':
        this.store.purge(req.name!);
        return { status: 204 };
      case 'backupSecret':
        return ok({ value: encodeBackup(this.store.backup(req.name!)).toString('base64url') });
      case 'restoreSecret':
        return this.restoreSecret(req);
    }
  }

  private setSecret(req: ApiRequest): ApiResponse {
    const { value, contentType, tags, attributes } = req.body;
    assertValue(value);
    assertContentType(contentType);
    assertTags(tags);
    const found = this.store.set(req.name!, { value, contentType, tags, attributes: parseAttributes(attributes) });
    return ok(this.bundle(found.record, found.version, true));
  }

  private updateSecret(req: ApiRequest): ApiResponse {
    const { contentType, tags, attributes } = req.body;
    assertContentType(contentType);
    assertTags(tags);
    const found = this.store.update(req.name!, req.version, { contentType, tags, attributes: parseAttributes(attributes) });
    return ok(this.bundle(found.record, found.version, false));
  }

  private restoreSecret(req: ApiRequest): ApiResponse {
    const raw = req.body.value;
    if (typeof raw !== 'string' || raw.length === 0) throw errors.badParameter('The property "value" (the backup blob) is required.');
    if (!/^[A-Za-z0-9_\-+/=]+$/.test(raw)) throw errors.corruptBackup();
    const record = this.store.restore(decodeBackup(Buffer.from(raw, 'base64url')));
    return ok(this.bundle(record, latestVersion(record), false));
  }

  private listSecrets(req: ApiRequest) {
    const pageSize = parseMaxResults(req.query.get('maxresults'));
    const marker = skipTokenOf(req.query);
    const page = paginate(this.store.listActive(), (r) => r.name.toLowerCase(), pageSize, marker);
    return {
      value: page.items.map((r) => this.item(r, latestVersion(r), `${this.vaultUrl}/secrets/${r.name}`)),
      nextLink: this.nextLink('/secrets', req, pageSize, page.nextMarker),
    };
  }

  private listVersions(req: ApiRequest) {
    const pageSize = parseMaxResults(req.query.get('maxresults'));
    const marker = skipTokenOf(req.query);
    const { record, versions } = this.store.listVersions(req.name!);
    const page = paginate(versions, (v) => v.version, pageSize, marker);
    return {
      value: record ? page.items.map((v) => this.item(record, v, `${this.vaultUrl}/secrets/${record.name}/${v.version}`)) : [],
      nextLink: this.nextLink(`/secrets/${encodeURIComponent(req.name!)}/versions`, req, pageSize, page.nextMarker),
    };
  }

  private listDeleted(req: ApiRequest) {
    const pageSize = parseMaxResults(req.query.get('maxresults'));
    const marker = skipTokenOf(req.query);
    const page = paginate(this.store.listDeleted(), (r) => r.name.toLowerCase(), pageSize, marker);
    return {
      value: page.items.map((r) => ({
        recoveryId: `${this.vaultUrl}/deletedsecrets/${r.name}`,
        deletedDate: r.deletedDate,
        scheduledPurgeDate: r.scheduledPurgeDate,
        ...this.item(r, latestVersion(r), `${this.vaultUrl}/secrets/${r.name}`),
      })),
      nextLink: this.nextLink('/deletedsecrets', req, pageSize, page.nextMarker),
    };
  }

  private nextLink(path: string, req: ApiRequest, pageSize: number, marker: string | undefined): string | null {
    if (marker === undefined) return null;
    // Same layout as Azure: ...?api-version=X&$skiptoken=<token>&maxresults=N (the token is base64url)
    return `${this.vaultUrl}${path}?api-version=${encodeURIComponent(req.apiVersion)}&$skiptoken=${encodeSkipToken(marker)}&maxresults=${pageSize}`;
  }

  private attributes(v: SecretVersionRecord) {
    const a: Record<string, unknown> = { enabled: v.enabled };
    if (v.nbf !== undefined) a.nbf = v.nbf;
    if (v.exp !== undefined) a.exp = v.exp;
    a.created = v.created;
    a.updated = v.updated;
    a.recoveryLevel = this.store.recoveryLevel;
    a.recoverableDays = this.store.recoverableDays;
    return a;
  }

  private item(record: SecretRecord, v: SecretVersionRecord, id: string) {
    const out: Record<string, unknown> = { id, attributes: this.attributes(v) };
    if (v.tags) out.tags = { ...v.tags };
    if (v.contentType !== undefined) out.contentType = v.contentType;
    return out;
  }

  private bundle(record: SecretRecord, v: SecretVersionRecord, includeValue: boolean) {
    const out: Record<string, unknown> = {};
    if (includeValue) out.value = v.value;
    if (v.contentType !== undefined) out.contentType = v.contentType;
    out.id = `${this.vaultUrl}/secrets/${record.name}/${v.version}`;
    out.attributes = this.attributes(v);
    if (v.tags) out.tags = { ...v.tags };
    return out;
  }

  private deletedBundle(record: SecretRecord) {
    return {
      recoveryId: `${this.vaultUrl}/deletedsecrets/${record.name}`,
      deletedDate: record.deletedDate,
      scheduledPurgeDate: record.scheduledPurgeDate,
      ...this.bundle(record, latestVersion(record), false),
    };
  }
}

function ok(body: unknown): ApiResponse {
  return { status: 200, body };
}

function skipTokenOf(query: URLSearchParams): string | undefined {
  const token = query.get('$skiptoken');
  return token ? decodeSkipToken(token) : undefined;
}
