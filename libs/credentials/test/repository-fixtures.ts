import { randomBytes, randomUUID } from 'node:crypto';
import { TransactionRunner } from '@app/common';
import type { TestDatabase } from '@app/testing';
import { DataSource } from 'typeorm';
import { CredentialStatus, CredentialType, ValueStoreKind } from '../src/credential-type';
import { CREDENTIALS_ENTITIES, CredentialEntity, CredentialVersionEntity, EnvelopeValueEntity } from '../src/entities';
import { CREDENTIALS_MIGRATIONS } from '../src/migrations';

/** The repositories alone: a bare DataSource with the lib's migrations and a runner on it, no Nest module. */
export async function openRepositoryDataSource(db: TestDatabase): Promise<{ ds: DataSource; runner: TransactionRunner }> {
  const ds = await new DataSource({ ...db.options, entities: CREDENTIALS_ENTITIES, migrations: CREDENTIALS_MIGRATIONS, migrationsRun: true }).initialize();
  return { ds, runner: new TransactionRunner(ds) };
}

export const tenant = (name = 't') => `${name}-${randomBytes(4).toString('hex')}`;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fixed instant the fixtures' times are relative to. */
export const BASE_MS = Date.UTC(2026, 0, 1);
export const at = (ms: number) => new Date(BASE_MS + ms);

/** A live metadata row; `over` replaces any field. */
export function credentialRow(tenantId: string, over: Partial<CredentialEntity> = {}): CredentialEntity {
  return {
    id: randomUUID(),
    tenantId,
    integrationId: 'github',
    connectionId: 'c1',
    type: CredentialType.API_KEY,
    valueStore: ValueStoreKind.VAULT,
    currentVersion: 1,
    status: CredentialStatus.ACTIVE,
    expiresAt: null,
    rotatedAt: null,
    tags: {},
    valueHint: null,
    certificate: null,
    vaultGeneration: 0,
    rowVersion: 1,
    deletedAt: null,
    createdBy: 'user-1',
    updatedBy: 'user-1',
    createdAt: at(0),
    updatedAt: at(0),
    ...over,
  };
}

export function versionRow(row: CredentialEntity, version: number, over: Partial<CredentialVersionEntity> = {}): CredentialVersionEntity {
  return {
    id: randomUUID(),
    credentialId: row.id,
    tenantId: row.tenantId,
    version,
    valueStore: ValueStoreKind.VAULT,
    vaultSecretName: 'cv--name--g0',
    vaultSecretVersion: `v${version}`,
    envelopeValueId: null,
    sourceVersion: null,
    revokedAt: null,
    valueHint: null,
    expiresAt: null,
    certificate: null,
    createdAt: at(version),
    createdBy: 'user-1',
    ...over,
  };
}

export function envelopeRow(tenantId: string, credentialId: string, over: Partial<EnvelopeValueEntity> = {}): EnvelopeValueEntity {
  const now = at(0);
  return {
    id: randomUUID(),
    tenantId,
    credentialId,
    version: 1,
    dataKeyName: 'cv-k--tenant',
    dataKeyVersion: 'k1',
    iv: 'aXY=',
    authTag: 'dGFn',
    ciphertext: 'Y2lwaGVy',
    createdAt: now,
    updatedAt: now,
    ...over,
  };
}
