/**
 * A credential id is a UUID, compared case-insensitively (RFC 9562): an app that passes one on in upper case (a
 * pasted ticket, a client that upper-cases UUIDs) names the same credential. It was NOT_FOUND, so a revoke of it
 * left the credential active. Tenant, integration and connection ids stay case-sensitive, UUID-shaped or not.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Test, type TestingModule } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import type { OperationContext } from '@app/common';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, DATABASE_KINDS, type TestDatabase, type TestDatabaseKind } from '@app/testing';
import { CredentialErrorCode, CredentialExpiryScanner, CredentialsService, CredentialStatus, CredentialType, ValueStoreKind } from './index';

describe.each(DATABASE_KINDS)('CredentialsService given a credential id in upper case (%s, local vault)', (kind: TestDatabaseKind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let moduleRef: TestingModule;
  let service: CredentialsService;
  const run = randomBytes(3).toString('hex');
  const ctx: OperationContext = { tenantId: `id-case-${run}`, actor: { id: 'user:embedder' } };
  const value = () => `sk_${randomBytes(18).toString('base64url')}`;
  const store = (connectionId: string, v = value()) =>
    service.store(ctx, { integrationId: 'github', connectionId, type: CredentialType.API_KEY, value: v, valueStore: ValueStoreKind.VAULT });

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase(kind);
    moduleRef = await Test.createTestingModule({
      imports: credentialsStackImports({ database: db.options, vault: emu, persistence: { outbox: { dispatch: false } } }),
    }).compile();
    await moduleRef.init();
    service = moduleRef.get(CredentialsService);
  });

  afterAll(async () => {
    await moduleRef?.close();
    await emu?.stop();
    await db?.drop();
  });

  it('reads and changes the credential the id names, in any case; results and audit rows name it as stored', async () => {
    const first = value();
    const { id } = await store('reads', first);
    expect(id).toBe(id.toLowerCase());
    const ID = id.toUpperCase();

    expect(await service.get(ctx, ID)).toMatchObject({ value: first, metadata: { id } });
    expect(await service.getMetadata(ctx, ID)).toMatchObject({ id });
    expect(await service.getVersion(ctx, ID, 1)).toMatchObject({ value: first, version: { credentialId: id, version: 1 } });
    expect(await service.verifyValue(ctx, ID, first)).toMatchObject({ matches: true, metadata: { id } });
    expect(await service.updateMetadata(ctx, ID, { tags: { team: 'payments' } })).toMatchObject({ id, tags: { team: 'payments' } });
    const second = value();
    expect(await service.rotate(ctx, ID, second)).toMatchObject({ id, version: 2 });
    expect((await service.listVersions(ctx, ID)).map((v) => v.version)).toEqual([2, 1]);
    expect(await service.rollback(ctx, ID, 1)).toMatchObject({ id, version: 3 });
    expect((await service.get(ctx, id)).value).toBe(first);

    // The trail of that credential is found under its id as stored.
    const rows = (await moduleRef.get(AuditService).query({ tenantId: ctx.tenantId, resource: id, order: 'asc', limit: 100 })).items;
    expect(rows.map((r) => r.action)).toEqual(expect.arrayContaining(['store', 'read', 'update_metadata', 'rotate', 'rollback']));
    expect(rows.every((r) => r.resource === id && r.result === 'success')).toBe(true);
  });

  it('revokes, un-revokes and deletes the credential the id names: every read of it refused after the revoke', async () => {
    const { id } = await store('revokes');
    const ID = id.toUpperCase();
    await service.get(ctx, id); // cached

    expect(await service.revoke(ctx, ID)).toMatchObject({ metadata: { id, status: CredentialStatus.REVOKED }, vaultVersions: 1 });
    await expect(service.get(ctx, id)).rejects.toMatchObject({ code: CredentialErrorCode.REVOKED });
    await expect(service.get(ctx, ID)).rejects.toMatchObject({ code: CredentialErrorCode.REVOKED });
    expect(await service.unrevoke(ctx, ID)).toMatchObject({ metadata: { id, status: CredentialStatus.ACTIVE } });
    await expect(service.get(ctx, id)).resolves.toMatchObject({ metadata: { id } });

    await service.delete(ctx, ID);
    await expect(service.getMetadata(ctx, id)).rejects.toMatchObject({ code: CredentialErrorCode.NOT_FOUND });

    const a = await store('batch-a');
    const b = await store('batch-b');
    const missing = randomUUID();
    // Two spellings of one id are one credential, deleted once.
    expect(await service.deleteMany(ctx, [a.id.toUpperCase(), a.id, b.id.toUpperCase(), missing.toUpperCase()])).toEqual({ deleted: [a.id, b.id], notFound: [missing] });
    await expect(service.getMetadata(ctx, b.id)).rejects.toMatchObject({ code: CredentialErrorCode.NOT_FOUND });
  });

  it("marks the credential an upper-case reference names expired (the expiry scanner's entry point)", async () => {
    const { id } = await store('expiring');
    await service.updateMetadata(ctx, id, { expiresAt: new Date(Date.now() - 1000) });
    const scanner = moduleRef.get(CredentialExpiryScanner);
    expect(await scanner.markExpired({ tenantId: ctx.tenantId, id: id.toUpperCase() }, 'expiry-job')).toMatchObject({ marked: true });
    expect((await service.getMetadata(ctx, id)).status).toBe(CredentialStatus.EXPIRED);
  });

  it('keeps a UUID-shaped connection id, and the tenant id, case-sensitive: only credential ids are folded', async () => {
    const connectionId = randomUUID().toUpperCase();
    const { id } = await store(connectionId);
    expect((await service.getMetadata(ctx, id)).connectionId).toBe(connectionId);
    expect((await service.list(ctx, { integrationId: 'github', connectionId })).items.map((c) => c.id)).toEqual([id]);
    expect((await service.list(ctx, { integrationId: 'github', connectionId: connectionId.toLowerCase() })).items).toEqual([]);
    await expect(service.getMetadata({ ...ctx, tenantId: ctx.tenantId.toUpperCase() }, id)).rejects.toMatchObject({ code: CredentialErrorCode.NOT_FOUND });
  });
});
