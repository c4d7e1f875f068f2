import { randomUUID } from 'node:crypto';
import type { OperationContext } from '@app/common';
import { CREDENTIAL_TYPES, CredentialStatus, type CredentialType, ValueStoreKind } from '../credential-type';
import type { CredentialSlot } from '../persistence/credential.repository';
import type { StoreCredentialInput } from '../credential.types';
import type { CredentialVersionEntity } from '../entities/credential-version.entity';
import type { CredentialEntity, StoredCertificateInfo } from '../entities/credential.entity';
import type { ValuePointer, ValueWriteRequest } from '../stores/credential-value-store';
import { CredentialAlreadyExistsError, CredentialValidationError } from '../errors/credential-errors';
import { valueHint } from '../masking';
import type { ValidatedValue } from '../validation/credential-value.validator';
import { IDENTIFIER_PATTERN } from '../validation/identifiers';
import { storedCertificate } from './credential-view';

/* The rows a write creates, shared by `CredentialWriter` and `CredentialBatchWriter`. */

/** A store's input once checked: its enum fields are the enums' members (the public input also takes their string values). */
export type CheckedStoreInput = Omit<StoreCredentialInput, 'type' | 'valueStore'> & { type: CredentialType; valueStore?: ValueStoreKind };

/** A new credential of `store`/`storeMany`, decided before its value is written. */
export interface StorePlan {
  ctx: OperationContext;
  input: CheckedStoreInput;
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

/** `store`'s input once checked: the input itself, the value validated, the value store chosen, the tags. */
export interface CheckedStore {
  input: CheckedStoreInput;
  validated: ValidatedValue;
  kind: ValueStoreKind;
  tags: Record<string, string>;
}

/** Everything of a new credential but its value pointer; refuses a live one in the slot. */
export function planStore(ctx: OperationContext, checked: CheckedStore, slot: CredentialSlot, now: Date): StorePlan {
  const { input } = checked;
  if (slot.liveId !== null) throw new CredentialAlreadyExistsError(slot.liveId);
  // Past every generation the slot used: the deleted predecessors' names are soft-deleted (or about to be, by a pending
  // delete), and a name of its own is what lets a delete soft-delete it. Not the newest row's by createdAt: a restore
  // backdates its row, and a store after it would write into a name a restored (then deleted) credential recorded.
  const generation = slot.highestGeneration === null ? 0 : slot.highestGeneration + 1;
  if (input.createdAt && input.createdAt.getTime() > now.getTime()) throw new CredentialValidationError('createdAt must not be in the future', 'createdAt');
  const id = randomUUID();
  const expiresAt = checked.validated.expiresAt ?? input.expiresAt ?? null;
  const owner = { tenantId: ctx.tenantId, credentialId: id, integrationId: input.integrationId, connectionId: input.connectionId, type: input.type };
  return {
    ctx, input, kind: checked.kind, tags: checked.tags, generation, now, createdAt: input.createdAt ?? now, expiresAt,
    hint: valueHint(input.type, input.value),
    certificate: storedCertificate(checked.validated.certificate),
    valueWrite: { ...owner, version: 1, value: input.value, expiresAt, vaultGeneration: generation, versionsInGeneration: 0 },
  };
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

/** A refused store's input as its audit row names it: what passed validation, else `(invalid)` — never the caller's text. */
export function storeResource(input: StoreCredentialInput | undefined): string {
  const part = (v: unknown) => (typeof v === 'string' && IDENTIFIER_PATTERN.test(v) ? v : INVALID);
  return `connection:${part(input?.integrationId)}/${part(input?.connectionId)}`;
}

/** The details of a refused store's audit row (its type, when it is one). */
export function storeFailureDetails(input: StoreCredentialInput | undefined): { type: string | undefined } {
  const type: unknown = input?.type;
  return { type: type === undefined ? undefined : CREDENTIAL_TYPES.includes(type as CredentialType) ? (type as string) : INVALID };
}

const INVALID = '(invalid)';

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
