import { Injectable } from '@nestjs/common';
import { auditErrorCode, AuditResult, AuditService } from '@app/audit';
import type { OperationContext } from '@app/common';
import {
  assertCredentialTags,
  CredentialsService,
  CredentialValidationError,
  CredentialStatus,
  CredentialType,
  DOTS_ONLY_MESSAGE,
  isDotsOnly,
  isReservedConnectionId,
  ValueStoreKind,
  type CredentialMetadata,
} from '@app/credentials';
import { PENDING_ROTATION_CONNECTION_PREFIX, RotationPolicyService, WEBHOOK_STAGING_TAG, type PolicyLevel, type RotationMode, type RotationPolicyOverride } from '@app/rotation';

/** One credential in a backup: metadata and every version's value, oldest first. */
export interface BackupCredential {
  integrationId: string;
  connectionId: string;
  type: CredentialType;
  valueStore: ValueStoreKind;
  status: CredentialStatus;
  tags: Record<string, string>;
  expiresAt: string | null;
  createdAt: string;
  currentVersion: number;
  versions: { version: number; value: string; expiresAt: string | null; createdAt: string; sourceVersion: number | null }[];
}

/** A policy override; a credential-level one names its credential by (integration, connection, type), not by id. */
export interface BackupPolicy {
  level: PolicyLevel;
  target?: string;
  credential?: { integrationId: string; connectionId: string; type: CredentialType };
  credentialType?: CredentialType;
  rotateAfterDays: number | null;
  warnBeforeDays: number | null;
  rotation: RotationMode | null;
}

export interface BackupPayload {
  credentials: BackupCredential[];
  /** Left out, with why (revoked values stay disabled: a backup must not bring them back; a staged webhook secret's rotation is not kept; nor a pending rotation value's credential id). */
  skipped: { integrationId: string; connectionId: string; type: CredentialType; reason: string }[];
  policies: BackupPolicy[];
}

export type RestoreAction = 'create' | 'append' | 'unchanged' | 'conflict';

export interface RestoreReport {
  tenantId: string;
  dryRun: boolean;
  credentials: Record<RestoreAction, number>;
  policies: { create: number; update: number; unchanged: number; skipped: number };
  items: { integrationId: string; connectionId: string; type: CredentialType; action: RestoreAction; versions: number; reason?: string }[];
}

/** Stands for the id of a credential a dry run would create (it has no override yet). */
const NOT_YET_CREATED = '\u0000dry-run';
const refOf = (c: { integrationId: string; connectionId: string; type: CredentialType }) => `${c.integrationId}\u0000${c.connectionId}\u0000${c.type}`;
const iso = (d: Date | null) => (d ? d.toISOString() : null);
const date = (s: string | null) => (s ? new Date(s) : null);

/**
 * Tenant backup and restore through the libs' public services, so every read and write is checked,
 * audited and crash-safe exactly as any other: values read with `allowExpired` (each read audited),
 * restored with store/rotate (version numbers and values equal when the source's versions are
 * 1..n; versions a revoke withdrew are left out, so the others are numbered from 1), policies with
 * the policy service. Restore is idempotent: a credential whose versions already
 * match is left alone; one with a matching prefix gets the missing versions; anything else is a
 * conflict, reported and untouched.
 */
@Injectable()
export class TenantBackupService {
  constructor(
    private readonly credentials: CredentialsService,
    private readonly policies: RotationPolicyService,
    private readonly audit: AuditService,
  ) {}

  /**
   * Whether the tenant has anything a backup holds or reports: a credential (revoked and internal ones too) or a policy
   * override. The CLI refuses a tenant with none — a mistyped id — before it writes a bundle or an audit row.
   */
  async holdsAnything(ctx: OperationContext): Promise<boolean> {
    if ((await this.credentials.list(ctx, { limit: 1, includeInternal: true })).items.length > 0) return true;
    return (await this.policies.list(ctx)).length > 0;
  }

  async backup(ctx: OperationContext): Promise<BackupPayload> {
    const started = Date.now();
    const payload: BackupPayload = { credentials: [], skipped: [], policies: [] };
    const byId = new Map<string, CredentialMetadata>();
    try {
      for (const meta of await this.listAll(ctx)) {
        byId.set(meta.id, meta);
        if (meta.status === CredentialStatus.REVOKED) {
          payload.skipped.push({ integrationId: meta.integrationId, connectionId: meta.connectionId, type: meta.type, reason: 'revoked' });
          continue;
        }
        if (meta.tags[WEBHOOK_STAGING_TAG] !== undefined) {
          // The value of a staged (or pending) webhook secret rotation, whose state is not in the bundle: restored alone
          // it would be a connection (`whsec-pending.<rotation id>`) nothing ever activates or deletes.
          payload.skipped.push({ integrationId: meta.integrationId, connectionId: meta.connectionId, type: meta.type, reason: 'staged webhook secret (stage it again after a restore)' });
          continue;
        }
        if (meta.type === CredentialType.CUSTOM_SECRET && meta.connectionId.startsWith(PENDING_ROTATION_CONNECTION_PREFIX)) {
          // A minted value whose rotation did not commit, named by its credential's id: a restore gives that credential
          // a new id, so restored it would be a value no rotation writes and no delete or revoke ever removes.
          payload.skipped.push({ integrationId: meta.integrationId, connectionId: meta.connectionId, type: meta.type, reason: 'pending rotation value (its rotation did not commit: rotate the credential after a restore)' });
          continue;
        }
        payload.credentials.push(await this.backupOne(ctx, meta));
      }
      for (const p of await this.policies.list(ctx)) {
        const policy = this.backupPolicy(p, byId);
        if (policy) payload.policies.push(policy);
      }
    } catch (error) {
      await this.record(ctx, 'tenant_backup', AuditResult.FAILURE, { durationMs: Date.now() - started }, error);
      throw error;
    }
    await this.record(ctx, 'tenant_backup', AuditResult.SUCCESS, {
      durationMs: Date.now() - started,
      // Not `credentials`: the audit lib drops that key as one that may hold a secret.
      credentialCount: payload.credentials.length,
      skipped: payload.skipped.length,
      policies: payload.policies.length,
    });
    return payload;
  }

  /** Every live credential of the tenant, through the keyset pages of `list`. */
  private async listAll(ctx: OperationContext): Promise<CredentialMetadata[]> {
    const all: CredentialMetadata[] = [];
    for (let cursor: string | undefined, first = true; first || cursor; first = false) {
      // Internal credentials too, to report them as skipped.
      const page = await this.credentials.list(ctx, { limit: 200, cursor, includeInternal: true });
      cursor = page.nextCursor;
      all.push(...page.items);
    }
    return all;
  }

  private async backupOne(ctx: OperationContext, meta: CredentialMetadata): Promise<BackupCredential> {
    // A version a revoke withdrew is not served to anyone, a backup included (it was leaked).
    const infos = (await this.credentials.listVersions(ctx, meta.id)).filter((v) => v.revokedAt === null).sort((a, b) => a.version - b.version);
    const versions: BackupCredential['versions'] = [];
    for (const info of infos) {
      const { value } = await this.credentials.getVersion(ctx, meta.id, info.version, { allowExpired: true });
      versions.push({ version: info.version, value, expiresAt: iso(info.expiresAt), createdAt: info.createdAt.toISOString(), sourceVersion: info.sourceVersion });
    }
    return {
      integrationId: meta.integrationId,
      connectionId: meta.connectionId,
      type: meta.type,
      valueStore: meta.valueStore,
      status: meta.status,
      tags: meta.tags,
      expiresAt: iso(meta.expiresAt),
      createdAt: meta.createdAt.toISOString(),
      currentVersion: meta.version,
      versions,
    };
  }

  private backupPolicy(p: RotationPolicyOverride, byId: Map<string, CredentialMetadata>): BackupPolicy | undefined {
    const base = { level: p.level, credentialType: p.credentialType, rotateAfterDays: p.rotateAfterDays, warnBeforeDays: p.warnBeforeDays, rotation: p.rotation };
    if (p.level !== 'credential') return { ...base, target: p.target };
    const meta = p.target ? byId.get(p.target) : undefined;
    // An override of a deleted or revoked credential has nothing to apply to after a restore.
    if (!meta || meta.status === CredentialStatus.REVOKED) return undefined;
    return { ...base, credential: { integrationId: meta.integrationId, connectionId: meta.connectionId, type: meta.type } };
  }

  /** What `restore` would do (`dryRun`) or did. Credentials first, then policies (credential ones need the new ids). */
  async restore(ctx: OperationContext, payload: BackupPayload, options: { dryRun: boolean }): Promise<RestoreReport> {
    const started = Date.now();
    const report: RestoreReport = {
      tenantId: ctx.tenantId,
      dryRun: options.dryRun,
      credentials: { create: 0, append: 0, unchanged: 0, conflict: 0 },
      policies: { create: 0, update: 0, unchanged: 0, skipped: 0 },
      items: [],
    };
    try {
      const existing = new Map((await this.listAll(ctx)).map((meta) => [refOf(meta), meta]));
      const idByRef = new Map<string, string>();
      for (const c of payload.credentials) {
        const item = await this.restoreOne(ctx, c, existing.get(refOf(c)), options.dryRun);
        report.credentials[item.action]++;
        report.items.push({ integrationId: c.integrationId, connectionId: c.connectionId, type: c.type, ...item });
        if (item.id) idByRef.set(refOf(c), item.id);
        else if (item.action === 'create') idByRef.set(refOf(c), NOT_YET_CREATED); // dry run
      }
      await this.restorePolicies(ctx, payload.policies, idByRef, options.dryRun, report);
    } catch (error) {
      if (!options.dryRun) await this.record(ctx, 'tenant_restore', AuditResult.FAILURE, { durationMs: Date.now() - started }, error);
      throw error;
    }
    if (!options.dryRun) {
      await this.record(ctx, 'tenant_restore', AuditResult.SUCCESS, { durationMs: Date.now() - started, ...report.credentials, policies: report.policies });
    }
    // Items carry no id: the report may be shared; ids are in the audit log.
    report.items = report.items.map(({ integrationId, connectionId, type, action, versions, reason }) => ({ integrationId, connectionId, type, action, versions, ...(reason ? { reason } : {}) }));
    return report;
  }

  private async restoreOne(
    ctx: OperationContext,
    c: BackupCredential,
    current: CredentialMetadata | undefined,
    dryRun: boolean,
  ): Promise<{ action: RestoreAction; versions: number; reason?: string; id?: string }> {
    const versions = [...c.versions].sort((a, b) => a.version - b.version);
    // A bundle from before a tag rule was tightened (no control characters): the store would refuse the tags after
    // the versions were written, stopping the restore half way, after a dry run that had promised a create or an append.
    const tagsRefused = refusedTags(c.tags ?? {});
    if (tagsRefused) return { action: 'conflict', versions: 0, reason: tagsRefused, ...(current ? { id: current.id } : {}) };
    if (!current) {
      // A bundle from before these ids were reserved: the store refuses them, which would stop the restore half way.
      if (isReservedConnectionId(c.connectionId)) return { action: 'conflict', versions: 0, reason: 'its connection id is reserved for the internal credentials of the libs (rotation-pending., whsec-pending.): store it under another' };
      // Likewise ids made only of dots, refused for new credentials since they were.
      for (const [field, id] of [['integration', c.integrationId], ['connection', c.connectionId]] as const) {
        if (isDotsOnly(id)) return { action: 'conflict', versions: 0, reason: `its ${field} id ${DOTS_ONLY_MESSAGE}: store it under another` };
      }
      if (dryRun) return { action: 'create', versions: versions.length };
      // Every version in one commit: a restore interrupted here leaves the credential absent, never at an
      // earlier version of the backup (which the source had replaced).
      const last = versions[versions.length - 1];
      const meta = await this.credentials.store(ctx, {
        integrationId: c.integrationId,
        connectionId: c.connectionId,
        type: c.type,
        value: last.value,
        expiresAt: date(last.expiresAt),
        history: versions.slice(0, -1).map((v) => ({ value: v.value, expiresAt: date(v.expiresAt) })),
        tags: c.tags,
        valueStore: c.valueStore,
        createdAt: new Date(c.createdAt),
      });
      await this.applyStatus(ctx, meta, c);
      return { action: 'create', versions: versions.length, id: meta.id };
    }
    if (current.status === CredentialStatus.REVOKED) {
      return { action: 'conflict', versions: 0, reason: 'the credential here is revoked', id: current.id };
    }
    // Compare what is here with the backup, oldest version first, by value.
    // Revoked versions are in no backup and served by no read: compared without them, in order.
    const here = (await this.credentials.listVersions(ctx, current.id)).filter((v) => v.revokedAt === null).sort((a, b) => a.version - b.version);
    if (here.length > versions.length) return { action: 'conflict', versions: 0, reason: 'it has more versions here than in the backup', id: current.id };
    for (let i = 0; i < here.length; i++) {
      const { value } = await this.credentials.getVersion(ctx, current.id, here[i].version, { allowExpired: true });
      if (value !== versions[i].value) {
        return { action: 'conflict', versions: 0, reason: `version ${here[i].version} differs from the backup`, id: current.id };
      }
    }
    const missing = versions.slice(here.length);
    if (missing.length === 0) return { action: 'unchanged', versions: 0, id: current.id };
    if (dryRun) return { action: 'append', versions: missing.length, id: current.id };
    let meta = current;
    for (const v of missing) meta = await this.credentials.rotate(ctx, meta.id, v.value, { expiresAt: date(v.expiresAt), expectedVersion: meta.rowVersion });
    await this.applyStatus(ctx, meta, c);
    return { action: 'append', versions: missing.length, id: meta.id };
  }

  /** Tags, and a status that restoring the dates alone does not reproduce (needs re-authorisation, expired by hand). */
  private async applyStatus(ctx: OperationContext, meta: CredentialMetadata, c: BackupCredential): Promise<void> {
    const expiryPassed = c.expiresAt !== null && new Date(c.expiresAt).getTime() <= Date.now();
    const status =
      c.status === CredentialStatus.NEEDS_REAUTH || (c.status === CredentialStatus.EXPIRED && !expiryPassed) ? c.status : undefined;
    const tagsDiffer = JSON.stringify(meta.tags) !== JSON.stringify(c.tags);
    if (!status && !tagsDiffer) return;
    await this.credentials.updateMetadata(ctx, meta.id, { ...(status ? { status } : {}), ...(tagsDiffer ? { tags: c.tags } : {}), expectedVersion: meta.rowVersion });
  }

  private async restorePolicies(ctx: OperationContext, policies: BackupPolicy[], idByRef: Map<string, string>, dryRun: boolean, report: RestoreReport): Promise<void> {
    const here = await this.policies.list(ctx);
    for (const p of policies) {
      const target = p.level === 'credential' ? (p.credential ? idByRef.get(refOf(p.credential)) : undefined) : p.target;
      if (p.level === 'credential' && !target) {
        report.policies.skipped++; // its credential was a conflict or not restored
        continue;
      }
      const scope = { level: p.level, ...(target ? { target } : {}), ...(p.credentialType ? { credentialType: p.credentialType } : {}) };
      const same = target === NOT_YET_CREATED ? undefined : here.find((h) => h.level === scope.level && (h.target ?? undefined) === scope.target && (h.credentialType ?? undefined) === scope.credentialType);
      if (same && same.rotateAfterDays === p.rotateAfterDays && same.warnBeforeDays === p.warnBeforeDays && same.rotation === p.rotation) {
        report.policies.unchanged++;
        continue;
      }
      report.policies[same ? 'update' : 'create']++;
      if (!dryRun) await this.policies.set(ctx, { ...scope, rotateAfterDays: p.rotateAfterDays, warnBeforeDays: p.warnBeforeDays, rotation: p.rotation });
    }
  }

  /** A failure's row carries `errorCode` (`<code>:<codeName>`, as every writer's), never the error's text. */
  private async record(ctx: OperationContext, action: string, result: AuditResult, details: Record<string, unknown>, error?: unknown): Promise<void> {
    await this.audit.record({ action, context: ctx, resource: `tenant:${ctx.tenantId}`, result, ...(error === undefined ? {} : { errorCode: auditErrorCode(error) }), details });
  }
}

/** Why the store would refuse a bundle's tags today (the message names a tag by position, never its key or value), or undefined. */
function refusedTags(tags: unknown): string | undefined {
  try {
    assertCredentialTags(tags);
    return undefined;
  } catch (e) {
    if (e instanceof CredentialValidationError) return `its tags are refused: ${e.message}`;
    throw e;
  }
}
