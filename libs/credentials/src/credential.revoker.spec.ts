import { Test } from '@nestjs/testing';
import { AuditAction } from '@app/audit';
import { ManualClock, type OperationContext } from '@app/common';
import { KeyVaultProvider, type SecretProperties } from '@app/key-vault';
import { CredentialCache } from './cache/credential-cache';
import { CredentialStatus } from './credential-type';
import { CredentialChangeCommitter } from './credential-change.committer';
import { CredentialRevoker } from './credential.revoker';
import { CredentialWriter } from './credential.writer';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from './credentials.constants';
import { resolveCredentialsOptions } from './credentials.options';
import type { CredentialEntity } from './entities/credential.entity';
import { CREDENTIAL_ERROR_HTTP_STATUS, CredentialConflictError, CredentialErrorCode, CredentialRevokeIncompleteError } from './errors/credential-errors';
import { CredentialRepository } from './persistence/credential.repository';
import { CredentialVersionRepository } from './persistence/credential-version.repository';
import { CredentialsPersistence } from './persistence/credentials-persistence';
import { CREDENTIAL_TAG, VaultValueStore } from './stores/vault-value-store';
import { credentialRow } from '../test/repository-fixtures';

const ID = '0b9f6a52-3c1e-4d8a-9f2b-6e4c1a7d2b10';
const SECRET_NAME = 'cv-acme-github-prod-api-key-g0';
const VALUE = 'sk_live_never-in-an-error';
const ctx: OperationContext = { tenantId: 'acme', actor: { id: 'user:responder' } };

/**
 * The revoke's own loop, over fakes: the row (compare-and-set on rowVersion), the writer's status change, the committer's
 * audit wrapper, the vault listing. Races on real databases: revoke-rotate-race.int-spec.ts.
 */
describe('CredentialRevoker.revoke', () => {
  let row: CredentialEntity;
  let revoker: CredentialRevoker;
  /** Another replica's write that commits while the revoke lists the vault (once per pass while `racing`). */
  let racing: boolean;
  let loads: number;
  let disabled: string[];
  let auditedFailures: { action: string; error: unknown }[];

  beforeEach(async () => {
    const now = new Date('2026-12-01T00:00:00Z');
    row = credentialRow('acme', { id: ID, connectionId: 'prod' });
    racing = false;
    loads = 0;
    disabled = [];
    auditedFailures = [];
    const rows: Partial<CredentialRepository> = {
      findById: async () => {
        loads++;
        return { ...row };
      },
      compareAndSet: async (before, after) => {
        if (before.rowVersion !== row.rowVersion) return false;
        row = { ...after };
        return true;
      },
    };
    const committer: Partial<CredentialChangeCommitter> = {
      audited: async <T>(action: string, _ctx: OperationContext, _id: string, work: (started: number) => Promise<T>) => {
        try {
          return await work(0);
        } catch (e) {
          auditedFailures.push({ action, error: e });
          throw e;
        }
      },
    };
    const writer: Partial<CredentialWriter> = {
      updateMetadata: async (_ctx, _id, input) => {
        row = { ...row, status: input.status as CredentialStatus, rowVersion: row.rowVersion + 1 };
        return {} as never;
      },
    };
    const version = (v: string): SecretProperties => ({ name: SECRET_NAME, version: v, enabled: true, tags: { [CREDENTIAL_TAG]: ID } }) as unknown as SecretProperties;
    const vaultStore: Partial<VaultValueStore> = {
      secretNamesOf: () => [SECRET_NAME],
      enabledVersions: async () => {
        // A write of the credential commits between the revoke's look at the row and its fence.
        if (racing) row = { ...row, rowVersion: row.rowVersion + 1 };
        return [version(`v${row.rowVersion}`)];
      },
      disable: async (_name, versions) => {
        disabled.push(...versions.map((v) => v.version));
      },
    };
    const cache: Partial<CredentialCache> = { evictEverywhere: async () => undefined, invalidate: () => undefined };
    const module = await Test.createTestingModule({
      providers: [
        CredentialRevoker,
        { provide: CredentialWriter, useValue: writer },
        { provide: CredentialChangeCommitter, useValue: committer },
        { provide: CredentialRepository, useValue: rows },
        { provide: CredentialVersionRepository, useValue: { list: async () => [] } },
        { provide: KeyVaultProvider, useValue: { updateSecretProperties: async () => undefined } },
        { provide: VaultValueStore, useValue: vaultStore },
        { provide: CredentialCache, useValue: cache },
        { provide: CREDENTIALS_CLOCK, useValue: new ManualClock(now) },
        { provide: CredentialsPersistence, useValue: { handlers: { register: () => () => undefined } } },
        { provide: CREDENTIALS_RESOLVED_OPTIONS, useValue: resolveCredentialsOptions() },
      ],
    }).compile();
    revoker = module.get(CredentialRevoker);
  });

  it('fences once nothing commits meanwhile: revoked, its vault versions disabled', async () => {
    const result = await revoker.revoke(ctx, ID);
    expect(result).toMatchObject({ metadata: { status: CredentialStatus.REVOKED, rowVersion: 3 }, vaultVersions: 1 });
    expect(disabled).toEqual(['v2']);
    expect(auditedFailures).toEqual([]);
  });

  it('writes committing on every pass: REVOKE_INCOMPLETE (409, revoke again), not a concurrency miss; the credential stays revoked', async () => {
    racing = true;
    const error = await revoker.revoke(ctx, ID).then(
      () => undefined,
      (e: unknown) => e,
    );
    // Its own code, not CONFLICT's "expected row version N": the caller set no precondition.
    expect(error).toBeInstanceOf(CredentialRevokeIncompleteError);
    expect(error).not.toBeInstanceOf(CredentialConflictError);
    expect(error).toMatchObject({ code: 2013, codeName: 'REVOKE_INCOMPLETE', credentialId: ID, retryable: true });
    const message = (error as Error).message;
    expect(message).toMatch(/is revoked/);
    expect(message).toMatch(/Revoke it again to finish/);
    expect(message).not.toMatch(/expected|row version/i);
    // Never a value, a vault secret name or a version in it.
    for (const leak of [VALUE, SECRET_NAME, ...disabled]) expect(message).not.toContain(leak);
    expect(JSON.stringify((error as CredentialRevokeIncompleteError).toJSON())).not.toContain(SECRET_NAME);
    expect(CREDENTIAL_ERROR_HTTP_STATUS[CredentialErrorCode.REVOKE_INCOMPLETE]).toBe(409);
    // Bounded: ten looks at the row (the status change, nine fences lost), the eleventh load gives up.
    expect(loads).toBe(11);
    expect(auditedFailures).toEqual([{ action: AuditAction.REVOKE, error }]);
    // Revoked all along; once the writes stop, calling again finishes it.
    expect(row.status).toBe(CredentialStatus.REVOKED);
    racing = false;
    await expect(revoker.revoke(ctx, ID)).resolves.toMatchObject({ metadata: { status: CredentialStatus.REVOKED } });
  });
});

/** The fakes a completion of a revoke by the outbox runs on: the row (compare-and-set on rowVersion), versions, vault. */
interface CompletionFakes {
  row: { current: CredentialEntity };
  list: () => Promise<unknown[]>;
  updateSecretProperties: (name: string, version: string, p: { enabled: boolean }) => unknown;
  vaultStore: { enabledVersions: () => Promise<unknown[]>; disable: (name: string, versions: SecretProperties[]) => Promise<void> };
  writer?: object;
}

/** Delivers the revoke's outbox event, past its grace, to the handler the revoker registers. */
async function deliverCompletion(f: CompletionFakes): Promise<void> {
  let handler: ((e: unknown) => Promise<void>) | undefined;
  const { row } = f;
  const module = await Test.createTestingModule({
    providers: [
      CredentialRevoker,
      { provide: CredentialWriter, useValue: f.writer ?? {} },
      { provide: CredentialChangeCommitter, useValue: {} },
      {
        provide: CredentialRepository,
        useValue: {
          findById: async () => ({ ...row.current }),
          compareAndSet: async (before: CredentialEntity, after: CredentialEntity) => before.rowVersion === row.current.rowVersion && Boolean((row.current = { ...after })),
        },
      },
      { provide: CredentialVersionRepository, useValue: { list: f.list } },
      { provide: KeyVaultProvider, useValue: { updateSecretProperties: f.updateSecretProperties } },
      { provide: VaultValueStore, useValue: { secretNamesOf: () => [SECRET_NAME], ...f.vaultStore } },
      { provide: CredentialCache, useValue: { evictEverywhere: async () => undefined } },
      { provide: CREDENTIALS_CLOCK, useValue: new ManualClock(new Date()) },
      { provide: CredentialsPersistence, useValue: { handlers: { register: (_n: string, h: (e: unknown) => Promise<void>) => ((handler = h), () => undefined) } } },
      { provide: CREDENTIALS_RESOLVED_OPTIONS, useValue: resolveCredentialsOptions() },
    ],
  }).compile();
  await module.init();
  await handler!({ id: 'e1', name: 'credentials.vault-values.revoke', tenantId: 'acme', payload: { credentialId: ID }, createdAt: new Date(Date.now() - 60_000), attempts: 0 });
}

/** The outbox's completion of a revoke left incomplete (its process died): one pass, never a status change of its own. */
describe('CredentialRevoker: completing a revoke from the outbox', () => {
  it('a rotation committing during the completion is not revoked again; its version, listed as an orphan, is enabled again', async () => {
    const row = { current: { ...credentialRow('acme', { id: ID, connectionId: 'prod' }), status: CredentialStatus.REVOKED } };
    const statusChanges: unknown[] = [];
    const enabledCalls: Array<[string, boolean]> = [];
    const fresh = { version: 2, vaultSecretName: SECRET_NAME, vaultSecretVersion: 'v-new', revokedAt: null };
    await deliverCompletion({
      row,
      writer: { updateMetadata: async (_c: unknown, _i: unknown, input: unknown) => statusChanges.push(input) },
      list: async () => (row.current.currentVersion === 2 ? [fresh] : []),
      updateSecretProperties: (_n, v, p) => enabledCalls.push([v, p.enabled]),
      vaultStore: {
        // The rotation's version is written, not committed yet: tagged, unreferenced — an orphan to the listing.
        enabledVersions: async () => [{ name: SECRET_NAME, version: 'v-new', enabled: true, tags: { [CREDENTIAL_TAG]: ID } }],
        disable: async (_n, versions) => {
          for (const v of versions) enabledCalls.push([v.version, false]);
          // ... and commits now, before the completion's fence: active again, at version 2.
          row.current = { ...row.current, status: CredentialStatus.ACTIVE, currentVersion: 2, rowVersion: row.current.rowVersion + 1 };
        },
      },
    });
    expect(statusChanges).toEqual([]);
    expect(row.current.status).toBe(CredentialStatus.ACTIVE);
    expect(enabledCalls).toEqual([
      ['v-new', false],
      ['v-new', true],
    ]);
  });

  it('an un-revoke committing during the completion keeps every version it re-enabled enabled, the previous ones too', async () => {
    const mark = new Date('2026-01-01T00:00:00Z');
    const row = { current: { ...credentialRow('acme', { id: ID, connectionId: 'prod' }), status: CredentialStatus.REVOKED, currentVersion: 2 } };
    let versions = [
      { version: 1, vaultSecretName: SECRET_NAME, vaultSecretVersion: 'v-previous', revokedAt: mark as Date | null },
      { version: 2, vaultSecretName: SECRET_NAME, vaultSecretVersion: 'v-current', revokedAt: mark as Date | null },
    ];
    // The vault's state of each version (the un-revoke re-enabled both before the completion looked).
    const enabled = new Map<string, boolean>([
      ['v-previous', true],
      ['v-current', true],
    ]);
    await deliverCompletion({
      row,
      list: async () => versions.map((v) => ({ ...v })),
      updateSecretProperties: (_n, v, p) => enabled.set(v, p.enabled),
      vaultStore: {
        enabledVersions: async () => [...enabled].filter(([, on]) => on).map(([version]) => ({ name: SECRET_NAME, version, enabled: true, tags: { [CREDENTIAL_TAG]: ID } })),
        disable: async (_n, list) => {
          for (const v of list) enabled.set(v.version, false);
          // The un-revoke (its vault side done before the completion's pass) commits now, before the completion's fence.
          versions = versions.map((v) => ({ ...v, revokedAt: null }));
          row.current = { ...row.current, status: CredentialStatus.ACTIVE, rowVersion: row.current.rowVersion + 1 };
        },
      },
    });
    expect(row.current.status).toBe(CredentialStatus.ACTIVE);
    // As the un-revoke left them: a rollback to the previous version reads it from the vault.
    expect(Object.fromEntries(enabled)).toEqual({ 'v-previous': true, 'v-current': true });
  });
});
