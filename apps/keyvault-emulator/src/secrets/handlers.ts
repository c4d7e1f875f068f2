import { backupBlobOf } from '../objects/backup';
import { SecretOperationName } from '../http/router';
import { ApiRequest as Request, ApiResponse, baseAttributes, deletedFields, nextLink, ok, skipTokenOf } from '../objects/render';
import { decodeBackup, encodeBackup } from './backup';
import { SecretRecord, SecretVersionRecord, latestVersion } from './model';
import { paginate, parseMaxResults } from '../objects/paging';
import { SecretStore } from './store';
import { assertContentType, assertNoConversion, assertSecretName, assertTags, assertValue, parseAttributes } from './validation';

/** Renders store records in the Key Vault REST shapes and implements each secrets operation. */
type ApiRequest = Request<SecretOperationName>;

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
        assertNoConversion(req.query.get('outContentType'), req.apiVersion);
        return ok(this.bundle(record, version, true, req.apiVersion));
      }
      case 'updateSecret':
        return this.updateSecret(req);
      case 'listSecrets':
        return ok(this.listSecrets(req));
      case 'listSecretVersions':
        return ok(this.listVersions(req));
      case 'deleteSecret':
        return ok(this.deletedBundle(this.store.delete(req.name!), req.apiVersion));
      case 'getDeletedSecret':
        return ok(this.deletedBundle(this.store.getDeleted(req.name!), req.apiVersion));
      case 'listDeletedSecrets':
        return ok(this.listDeleted(req));
      case 'recoverDeletedSecret': {
        const record = this.store.recover(req.name!);
        return ok(this.bundle(record, latestVersion(record), false, req.apiVersion));
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
    return ok(this.bundle(found.record, found.version, true, req.apiVersion));
  }

  private updateSecret(req: ApiRequest): ApiResponse {
    const { contentType, tags, attributes } = req.body;
    assertContentType(contentType);
    assertTags(tags);
    const found = this.store.update(req.name!, req.version, { contentType, tags, attributes: parseAttributes(attributes) });
    return ok(this.bundle(found.record, found.version, false, req.apiVersion));
  }

  private restoreSecret(req: ApiRequest): ApiResponse {
    const backup = decodeBackup(backupBlobOf(req.body));
    const record = this.store.restore(backup, `${this.vaultUrl}/secrets/${backup.name}/${latestVersion(backup).version}`);
    return ok(this.bundle(record, latestVersion(record), false, req.apiVersion));
  }

  private listSecrets(req: ApiRequest) {
    const pageSize = parseMaxResults(req.query.get('maxresults'));
    const marker = skipTokenOf(req.query);
    const page = paginate(this.store.listActive(), (r) => r.name.toLowerCase(), pageSize, marker);
    return {
      value: page.items.map((r) => this.item(r, latestVersion(r), `${this.vaultUrl}/secrets/${r.name}`, req.apiVersion)),
      nextLink: this.nextLink('/secrets', req, pageSize, page.nextMarker),
    };
  }

  private listVersions(req: ApiRequest) {
    const pageSize = parseMaxResults(req.query.get('maxresults'));
    const marker = skipTokenOf(req.query);
    const { record, versions } = this.store.listVersions(req.name!);
    const page = paginate(versions, (v) => v.version, pageSize, marker);
    return {
      value: record ? page.items.map((v) => this.item(record, v, `${this.vaultUrl}/secrets/${record.name}/${v.version}`, req.apiVersion)) : [],
      nextLink: this.nextLink(`/secrets/${encodeURIComponent(req.name!)}/versions`, req, pageSize, page.nextMarker),
    };
  }

  private listDeleted(req: ApiRequest) {
    const pageSize = parseMaxResults(req.query.get('maxresults'));
    const marker = skipTokenOf(req.query);
    const page = paginate(this.store.listDeleted(), (r) => r.name.toLowerCase(), pageSize, marker);
    return {
      value: page.items.map((r) => ({
        ...deletedFields(this.vaultUrl, 'deletedsecrets', r),
        ...this.item(r, latestVersion(r), `${this.vaultUrl}/secrets/${r.name}`, req.apiVersion),
      })),
      nextLink: this.nextLink('/deletedsecrets', req, pageSize, page.nextMarker),
    };
  }

  private nextLink(path: string, req: ApiRequest, pageSize: number, marker: string | undefined): string | null {
    return nextLink(req.origin ?? this.vaultUrl, path, req.apiVersion, pageSize, marker);
  }

  private item(record: SecretRecord, v: SecretVersionRecord, id: string, apiVersion: string) {
    const out: Record<string, unknown> = { id, attributes: baseAttributes(v, this.store, apiVersion) };
    if (v.tags) out.tags = { ...v.tags };
    if (v.contentType !== undefined) out.contentType = v.contentType;
    return out;
  }

  private bundle(record: SecretRecord, v: SecretVersionRecord, includeValue: boolean, apiVersion: string) {
    const out: Record<string, unknown> = {};
    if (includeValue) out.value = v.value;
    if (v.contentType !== undefined) out.contentType = v.contentType;
    out.id = `${this.vaultUrl}/secrets/${record.name}/${v.version}`;
    out.attributes = baseAttributes(v, this.store, apiVersion);
    if (v.tags) out.tags = { ...v.tags };
    return out;
  }

  private deletedBundle(record: SecretRecord, apiVersion: string) {
    return {
      ...deletedFields(this.vaultUrl, 'deletedsecrets', record),
      ...this.bundle(record, latestVersion(record), false, apiVersion),
    };
  }
}
