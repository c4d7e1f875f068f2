import { randomUUID } from 'node:crypto';
import type { OperationContext } from '@app/common';
import { CredentialStatus, ValueStoreKind } from '../credential-type';
import type { StoreCredentialInput } from '../credential.types';
import type { CredentialVersionEntity } from '../entities/credential-version.entity';
import type { CredentialEntity, StoredCertificateInfo } from '../entities/credential.entity';
import type { ValuePointer, ValueWriteRequest } from '../stores/credential-value-store';

/* The rows a write creates, shared by `CredentialWriter` and `CredentialBatchWriter`. */

/** A new credential of `store`/`storeMany`, decided before its value is written. */
export interface StorePlan {
  ctx: OperationContext;
  input: StoreCredentialInput;
  kind: ValueStoreKind;
  tags: Record<string, string>;
  generation: number;
  now: Date;
  createdAt: Date;
  expiresAt: Date | null;
  hint: string | null;
  certificate: StoredCertificateInfo | null;
  valueWrite: ValueWriteRequest;
}

/** A version row's own facts. */
export interface VersionFacts {
  version: number;
  kind: ValueStoreKind;
  pointer: ValuePointer;
  hint: string | null;
  expiresAt: Date | null;
  certificate: StoredCertificateInfo | null;
  sourceVersion: number | null;
}

/** The metadata row of a new credential, once its value is written. */
export function newRow(p: StorePlan, pointer: ValuePointer): CredentialEntity {
  return {
    id: p.valueWrite.credentialId,
    tenantId: p.ctx.tenantId,
    integrationId: p.input.integrationId,
    connectionId: p.input.connectionId,
    type: p.input.type,
    valueStore: p.kind,
    currentVersion: 1,
    status: CredentialStatus.ACTIVE,
    expiresAt: p.expiresAt,
    rotatedAt: null,
    tags: { ...p.tags },
    valueHint: p.hint,
    certificate: p.certificate,
    vaultGeneration: pointer.vaultGeneration ?? p.generation,
    rowVersion: 1,
    createdAt: p.createdAt,
    updatedAt: p.now,
    deletedAt: null,
    createdBy: p.ctx.actor.id,
    updatedBy: p.ctx.actor.id,
  };
}

/** What `store` needs of its caller's name for the failure's audit row. */
export function storeResource(input: StoreCredentialInput | undefined): string {
  return `connection:${String(input?.integrationId)}/${String(input?.connectionId)}`;
}

export function firstVersionRow(row: CredentialEntity, p: StorePlan, pointer: ValuePointer): CredentialVersionEntity {
  return versionRow(row, { version: 1, kind: p.kind, pointer, hint: p.hint, expiresAt: p.expiresAt, certificate: p.certificate, sourceVersion: null }, p.ctx, p.createdAt);
}

export function versionRow(row: CredentialEntity, v: VersionFacts, ctx: OperationContext, now: Date): CredentialVersionEntity {
  return {
    id: randomUUID(),
    credentialId: row.id,
    tenantId: row.tenantId,
    version: v.version,
    valueStore: v.kind,
    vaultSecretName: v.pointer.vaultSecretName ?? null,
    vaultSecretVersion: v.pointer.vaultSecretVersion ?? null,
    envelopeValueId: v.pointer.envelopeValueId ?? null,
    sourceVersion: v.sourceVersion,
    valueHint: v.hint,
    expiresAt: v.expiresAt,
    certificate: v.certificate,
    revokedAt: null,
    createdAt: now,
    createdBy: ctx.actor.id,
  };
}
