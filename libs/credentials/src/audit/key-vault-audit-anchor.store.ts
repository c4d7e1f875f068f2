import { createHash } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { AuditAnchor, AuditAnchorStore } from '@app/audit';
import { isKeyVaultError, KeyVaultErrorCode, KeyVaultProvider, type DeletedSecret } from '@app/key-vault';
import { AuditAnchorStoreError } from '../errors/credential-errors';

/** Tag value that marks an anchor secret (`purpose` tag). */
export const AUDIT_ANCHOR_PURPOSE = 'cv-audit-anchor';
const CONTENT_TYPE = 'application/json';
/** The chain's row hashes: SHA-256, lowercase hex. */
const HASH = /^[0-9a-f]{64}$/;
/** Tenant ids of the host are at most 128 characters; a secret's tag value holds 512 (about-secrets, "Secret tags"). */
const MAX_TENANT_ID = 128;

/**
 * Name of a tenant's anchor secret: `<prefix>-audit-anchor-<first 40 hex of sha256(tenantId)>`.
 * Hashed because tenant ids may hold characters Key Vault names refuse; 160 bits make a collision
 * practically impossible, and `read` checks the tenant id stored inside anyway. The prefix is this lib's
 * `vault.namePrefix` (the stock host's `VAULT_SECRET_PREFIX`), so deployments sharing a vault keep apart
 * ("-audit-" never begins a credential or data-key name, which continue the prefix with "--", "-h-" or "-k").
 */
export function auditAnchorSecretName(tenantId: string, prefix = 'cv'): string {
  return `${prefix}-audit-anchor-${createHash('sha256').update(tenantId, 'utf8').digest('hex').slice(0, 40)}`;
}

/**
 * `AuditAnchorStore` over Key Vault: one secret per tenant, each anchor a new version (the vault
 * keeps the history, and who may change anchors is governed apart from the database). Here, beside the
 * credential secrets whose naming it keeps clear of, so an embedding app provides it as the stock host does
 * (`{ provide: AuditAnchorStore, inject: [KeyVaultProvider], useFactory: (kv) => new KeyVaultAuditAnchorStore(kv) }`, global).
 *
 * A soft-deleted anchor is not "no anchor": `read` fails with `AuditAnchorStoreError` until an
 * operator recovers the secret (to verify against it) or purges it (to start afresh) — writing a
 * new version is impossible meanwhile anyway (Key Vault refuses a soft-deleted name). A purged
 * anchor cannot be told from one never written: `read` then returns null.
 */
export class KeyVaultAuditAnchorStore extends AuditAnchorStore {
  private readonly logger = new Logger(KeyVaultAuditAnchorStore.name);
  private readonly namePattern: RegExp;

  constructor(
    private readonly kv: KeyVaultProvider,
    private readonly prefix = 'cv',
  ) {
    super();
    this.namePattern = new RegExp(`^${prefix}-audit-anchor-[0-9a-f]{40}$`, 'i');
  }

  async write(anchor: AuditAnchor): Promise<void> {
    const problem = anchorProblem(anchor, anchor?.tenantId);
    if (problem) throw new AuditAnchorStoreError(`Refusing to write an invalid audit anchor: ${problem}`);
    const name = auditAnchorSecretName(anchor.tenantId, this.prefix);
    const value = JSON.stringify({
      tenantId: anchor.tenantId,
      sequence: anchor.sequence,
      hash: anchor.hash,
      anchoredAt: anchor.anchoredAt.toISOString(),
      ...(anchor.prunedThrough !== undefined ? { prunedThrough: anchor.prunedThrough } : {}),
    });
    try {
      await this.kv.setSecret(name, value, {
        contentType: CONTENT_TYPE,
        tags: { purpose: AUDIT_ANCHOR_PURPOSE, tenantId: anchor.tenantId },
      });
    } catch (e) {
      if (isKeyVaultError(e, KeyVaultErrorCode.DELETED_BUT_RECOVERABLE)) throw this.deletedError(anchor.tenantId, name, undefined, e);
      throw e;
    }
  }

  async read(tenantId: string): Promise<AuditAnchor | null> {
    const name = auditAnchorSecretName(tenantId, this.prefix);
    let value: string;
    try {
      // A tenant has no anchor until its first one is written: absent is an answer, not a vault error.
      value = (await this.kv.getSecret(name, undefined, { notFoundExpected: true })).value;
    } catch (e) {
      if (!isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND)) throw e;
      const deleted = await this.deletedSecret(name);
      if (deleted) throw this.deletedError(tenantId, name, deleted);
      return null;
    }
    try {
      return parseAnchor(value, tenantId);
    } catch (e) {
      throw this.corruptError(e, name, `The audit anchor of tenant ${tenantId}`);
    }
  }

  async tenants(): Promise<string[]> {
    const tenants = new Set<string>();
    for await (const p of this.kv.listAllSecrets()) {
      if (p.tags.purpose !== AUDIT_ANCHOR_PURPOSE || !this.namePattern.test(p.name)) continue;
      const tagged = p.tags.tenantId;
      // Tags can be edited without a new version: trust one only if it still hashes to the name.
      if (tagged !== undefined && auditAnchorSecretName(tagged, this.prefix) === p.name.toLowerCase()) {
        tenants.add(tagged);
        continue;
      }
      this.logger.warn(`Audit anchor secret "${p.name}" has a tenantId tag that does not match its name; reading the tenant from its value`);
      const value = (await this.kv.getSecret(p.name)).value;
      try {
        tenants.add(tenantFromValue(value, (t) => auditAnchorSecretName(t, this.prefix) === p.name.toLowerCase()));
      } catch (e) {
        throw this.corruptError(e, p.name, 'An audit anchor');
      }
    }
    return [...tenants];
  }

  /** A soft-deleted or corrupt anchor (this store's own error), or a disabled one (the vault refuses to read it). */
  override isUnusable(error: unknown): boolean {
    return error instanceof AuditAnchorStoreError || isKeyVaultError(error, KeyVaultErrorCode.DISABLED);
  }

  /** The soft-deleted secret, or undefined when there is none (or we may not look: then we say so). */
  private async deletedSecret(name: string): Promise<DeletedSecret | undefined> {
    try {
      return await this.kv.getDeletedSecret(name, { notFoundExpected: true });
    } catch (e) {
      if (isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND)) return undefined;
      if (isKeyVaultError(e, KeyVaultErrorCode.FORBIDDEN)) {
        this.logger.warn(
          `Audit anchor secret "${name}" does not exist, and this identity may not read deleted secrets: ` +
            'cannot tell a deleted anchor from a missing one (grant it "list" on secrets)',
        );
        return undefined;
      }
      throw e;
    }
  }

  private deletedError(tenantId: string, name: string, deleted: DeletedSecret | undefined, cause?: unknown): AuditAnchorStoreError {
    const when = deleted?.deletedOn ? ` on ${deleted.deletedOn.toISOString()}` : '';
    const remedy = 'recover it to verify the chain against it, or purge it to start anchoring afresh';
    this.logger.warn(`Audit anchor secret "${name}" was deleted${when} and is soft-deleted: ${remedy}`);
    return new AuditAnchorStoreError(`The audit anchor of tenant ${tenantId} was deleted${when}: ${remedy}`, cause === undefined ? undefined : { cause });
  }

  /** `e` as the error of a corrupt anchor (`subject` names it without its secret), logged with its secret's name. */
  private corruptError(e: unknown, name: string, subject: string): unknown {
    if (!(e instanceof CorruptAnchor)) return e;
    this.logger.warn(`Audit anchor secret "${name}" ${e.problem}: the anchor is corrupt`);
    return new AuditAnchorStoreError(`${subject} ${e.problem}: the anchor is corrupt`);
  }
}

/** What is wrong with an anchor's stored value (thrown inside the store, which names the secret). */
class CorruptAnchor extends Error {
  constructor(readonly problem: string) {
    super(problem);
  }
}

/** What is wrong with `a` as an anchor of `tenantId`, or undefined when nothing is. */
function anchorProblem(a: Partial<Record<keyof AuditAnchor, unknown>> | null | undefined, tenantId: unknown): string | undefined {
  if (typeof a !== 'object' || a === null) return 'not an object';
  if (typeof a.tenantId !== 'string' || a.tenantId.length === 0 || a.tenantId.length > MAX_TENANT_ID) {
    return `tenantId must be a string of 1-${MAX_TENANT_ID} characters`;
  }
  if (a.tenantId !== tenantId) return 'it names another tenant';
  if (typeof a.sequence !== 'number' || !Number.isSafeInteger(a.sequence) || a.sequence < 0) return 'sequence must be a non-negative integer';
  if (typeof a.hash !== 'string' || !HASH.test(a.hash)) return 'hash must be 64 lowercase hex digits';
  if (!(a.anchoredAt instanceof Date) || Number.isNaN(a.anchoredAt.getTime())) return 'anchoredAt must be a valid date';
  if (a.prunedThrough !== undefined && (typeof a.prunedThrough !== 'number' || !Number.isSafeInteger(a.prunedThrough) || a.prunedThrough < 0 || a.prunedThrough >= a.sequence)) {
    return 'prunedThrough must be an integer from 0 to below sequence';
  }
  return undefined;
}

function parseJson(value: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch {
    throw new CorruptAnchor('does not hold JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CorruptAnchor('does not hold a JSON object');
  return raw as Record<string, unknown>;
}

function parseAnchor(value: string, tenantId: string): AuditAnchor {
  const raw = parseJson(value);
  const anchoredAt = typeof raw.anchoredAt === 'string' && raw.anchoredAt !== '' ? new Date(raw.anchoredAt) : undefined;
  const anchor = { tenantId: raw.tenantId, sequence: raw.sequence, hash: raw.hash, anchoredAt, ...(raw.prunedThrough !== undefined ? { prunedThrough: raw.prunedThrough } : {}) };
  const problem = anchorProblem(anchor, tenantId);
  if (problem) throw new CorruptAnchor(`is invalid (${problem})`);
  return anchor as AuditAnchor;
}

function tenantFromValue(value: string, belongs: (tenantId: string) => boolean): string {
  const t = parseJson(value).tenantId;
  if (typeof t !== 'string' || !belongs(t)) throw new CorruptAnchor('names a tenant whose anchor it is not');
  return t;
}
