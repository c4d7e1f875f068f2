import { randomBytes } from 'node:crypto';
import { AuditService } from '@app/audit';
import { CredentialsService, CredentialType, ValueStoreKind } from '@app/credentials';
import { PENDING_ROTATION_CONNECTION_PREFIX, RotationHandlerRegistry, RotationPolicyService, RotationService } from '@app/rotation';
import { TenantBackupService, type BackupPayload } from '../apps/api/src/backup/tenant-backup.service';
import { EmbeddedVault } from '../apps/api/src/vault/embedded-vault';
import { startTestHost, TestHost, ROTATION_JOBS_OFF } from './support/host';

/**
 * A tenant backup or restore that fails leaves a failure audit row with the one errorCode format of every writer
 * (`<code>:<codeName>`), and no text of the error: its message may quote what it was doing.
 */
describe('tenant backup and restore failures in the audit log (SQLite, local vault)', () => {
  let host: TestHost;
  let service: TenantBackupService;
  const vault = () => host.app.get(EmbeddedVault).emulator!;
  const rows = async (tenantId: string, action: string) => (await host.app.get(AuditService).query({ tenantId, action })).items;

  beforeAll(async () => {
    host = await startTestHost('sqlite', { ...ROTATION_JOBS_OFF, OAUTH_PROACTIVE_ENABLED: 'false' });
    service = new TenantBackupService(host.app.get(CredentialsService), host.app.get(RotationPolicyService), host.app.get(AuditService));
  });
  afterEach(() => vault()?.clearDenials());
  afterAll(async () => {
    await host?.close();
  });

  it('a restore the vault refuses: failure row with errorCode 1010:FORBIDDEN, no message', async () => {
    const ctx = { tenantId: `bk-r-${randomBytes(3).toString('hex')}`, actor: { id: 'ops' } };
    const value = `sk_live_${randomBytes(18).toString('hex')}`;
    const now = new Date().toISOString();
    const payload: BackupPayload = {
      credentials: [
        { integrationId: 'github', connectionId: 'ci', type: CredentialType.API_KEY, valueStore: ValueStoreKind.VAULT, status: 'active', tags: {}, expiresAt: null, createdAt: now, currentVersion: 1, versions: [{ version: 1, value, expiresAt: null, createdAt: now }] },
      ] as BackupPayload['credentials'],
      skipped: [],
      policies: [],
    };
    vault().deny({ operations: ['setSecret'] });
    const error = await service.restore(ctx, payload, { dryRun: false }).catch((e: Error) => e);
    expect(error).toMatchObject({ code: 1010, codeName: 'FORBIDDEN' });
    const [row] = await rows(ctx.tenantId, 'tenant_restore');
    expect(row).toMatchObject({ result: 'failure', errorCode: '1010:FORBIDDEN' });
    const stored = JSON.stringify(row);
    for (const leak of [(error as Error).message, value]) expect(stored).not.toContain(leak);
  });

  // Its count was written as `credentials`, a key the audit lib drops as one that may hold a secret.
  it("a backup's success row counts the credentials, skipped rows and policies it holds", async () => {
    const ctx = { tenantId: `bk-s-${randomBytes(3).toString('hex')}`, actor: { id: 'ops' } };
    const credentials = host.app.get(CredentialsService);
    for (const connectionId of ['ci', 'deploy']) await credentials.store(ctx, { integrationId: 'github', connectionId, type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}` });
    const payload = await service.backup(ctx);
    expect(payload.credentials).toHaveLength(2);
    const [row] = await rows(ctx.tenantId, 'tenant_backup');
    expect(row).toMatchObject({ result: 'success', details: { credentialCount: 2, skipped: 0, policies: 0 } });
    expect(row.details).not.toHaveProperty('_redacted');
  });

  it('a backup the vault refuses to read: failure row with errorCode 1010:FORBIDDEN, no message', async () => {
    const ctx = { tenantId: `bk-b-${randomBytes(3).toString('hex')}`, actor: { id: 'ops' } };
    const value = `sk_live_${randomBytes(18).toString('hex')}`;
    await host.app.get(CredentialsService).store(ctx, { integrationId: 'github', connectionId: 'ci', type: CredentialType.API_KEY, value });
    vault().deny({ operations: ['getSecret'] });
    const error = await service.backup(ctx).catch((e: Error) => e);
    expect(error).toMatchObject({ code: 1010, codeName: 'FORBIDDEN' });
    const [row] = await rows(ctx.tenantId, 'tenant_backup');
    expect(row).toMatchObject({ result: 'failure', errorCode: '1010:FORBIDDEN' });
    const stored = JSON.stringify(row);
    for (const leak of [(error as Error).message, value]) expect(stored).not.toContain(leak);
  });

  // A bundle made before connection ids under rotation-pending. / whsec-pending. were reserved may hold a tenant's own
  // credential there. The store refuses it now: the restore threw 400 half way (what came before it written, the rest
  // not), after a dry run that had promised a create.
  // Likewise integration or connection ids made only of dots, refused for new credentials since they were.
  it.each([
    ['a reserved connection id', { connectionId: 'rotation-pending.ci' }, 'reserved'],
    ['a connection id made only of dots', { connectionId: '..' }, 'only of dots'],
    ['an integration id made only of dots', { integrationId: '.' }, 'only of dots'],
  ])('a credential under %s in a bundle is a conflict, with why, in the dry run and the restore; the rest is restored', async (_, odd: { integrationId?: string; connectionId?: string }, why) => {
    const ctx = { tenantId: `bk-x-${randomBytes(3).toString('hex')}`, actor: { id: 'ops' } };
    const now = new Date().toISOString();
    const one = (ids: { integrationId?: string; connectionId: string }, value: string) => ({
      integrationId: 'github', ...ids, type: CredentialType.API_KEY, valueStore: ValueStoreKind.ENVELOPE, status: 'active', tags: {}, expiresAt: null, createdAt: now, currentVersion: 1,
      versions: [{ version: 1, value, expiresAt: null, createdAt: now, sourceVersion: null }],
    });
    const oddIds = { connectionId: 'odd', ...odd };
    const payload = {
      credentials: [one({ connectionId: 'ci' }, `k-${randomBytes(12).toString('hex')}`), one(oddIds, `k-${randomBytes(12).toString('hex')}`), one({ connectionId: 'deploy' }, `k-${randomBytes(12).toString('hex')}`)],
      skipped: [],
      policies: [],
    } as unknown as BackupPayload;
    const reserved = { ...oddIds, action: 'conflict', versions: 0, reason: expect.stringContaining(why) };
    const dry = await service.restore(ctx, payload, { dryRun: true });
    expect(dry.credentials).toEqual({ create: 2, append: 0, unchanged: 0, conflict: 1 });
    expect(dry.items[1]).toMatchObject(reserved);
    const done = await service.restore(ctx, payload, { dryRun: false });
    expect(done.credentials).toEqual({ create: 2, append: 0, unchanged: 0, conflict: 1 });
    expect(done.items[1]).toMatchObject(reserved);
    const here = await host.app.get(CredentialsService).list(ctx, { includeInternal: true });
    expect(here.items.map((c) => c.connectionId).sort()).toEqual(['ci', 'deploy']);
  });

  // Tag values with control characters were stored before they were refused: a bundle made then holds them. The store
  // refuses them now, after a credential's versions were written (a create's tags, an append's updateMetadata).
  it('a credential whose tags the store refuses now is a conflict, with why, in the dry run and the restore — created or appended, nothing of it written; the rest is restored', async () => {
    const ctx = { tenantId: `bk-t-${randomBytes(3).toString('hex')}`, actor: { id: 'ops' } };
    const now = new Date().toISOString();
    const credentials = host.app.get(CredentialsService);
    const first = `k-${randomBytes(12).toString('hex')}`;
    const deploy = await credentials.store(ctx, { integrationId: 'github', connectionId: 'deploy', type: CredentialType.API_KEY, value: first });
    const version = (version: number, value: string) => ({ version, value, expiresAt: null, createdAt: now, sourceVersion: null });
    const one = (connectionId: string, tags: Record<string, string>, versions = [version(1, `k-${randomBytes(12).toString('hex')}`)]) => ({
      integrationId: 'github', connectionId, type: CredentialType.API_KEY, valueStore: ValueStoreKind.ENVELOPE, status: 'active', tags, expiresAt: null, createdAt: now, currentVersion: versions.length, versions,
    });
    const bad = { team: 'core', note: 'line\nbreak\u0000' };
    const payload = {
      credentials: [one('ci', { team: 'core' }), one('notes', bad), one('deploy', bad, [version(1, first), version(2, `k-${randomBytes(12).toString('hex')}`)])],
      skipped: [],
      policies: [],
    } as unknown as BackupPayload;
    const refused = (connectionId: string) => ({ connectionId, action: 'conflict', versions: 0, reason: expect.stringContaining('tag #2') });
    for (const dryRun of [true, false]) {
      const report = await service.restore(ctx, payload, { dryRun });
      expect(report.credentials).toEqual({ create: 1, append: 0, unchanged: 0, conflict: 2 });
      expect(report.items.slice(1)).toEqual([expect.objectContaining(refused('notes')), expect.objectContaining(refused('deploy'))]);
      expect(JSON.stringify(report)).not.toContain('line');
    }
    const here = await credentials.list(ctx);
    expect(here.items.map((c) => c.connectionId).sort()).toEqual(['ci', 'deploy']);
    expect(await credentials.get(ctx, deploy.id)).toMatchObject({ value: first, metadata: { version: 1, tags: {} } });
  });

  it("a pending rotation value (minted, its write refused) is left out, with why: restored it would name a credential id the restore does not give, and nothing would ever write or delete it", async () => {
    const ctx = { tenantId: `bk-p-${randomBytes(3).toString('hex')}`, actor: { id: 'ops' } };
    const mintedValue = `pk_${randomBytes(16).toString('hex')}`;
    const off = host.app.get(RotationHandlerRegistry).register({ integrationId: 'acme', handler: { mint: () => Promise.resolve({ value: mintedValue }) } });
    try {
      const credentials = host.app.get(CredentialsService);
      // The tenant's envelope data key exists (as in a live vault), so the minted value can be kept.
      await credentials.store(ctx, { integrationId: 'other', connectionId: 'e', type: CredentialType.CUSTOM_SECRET, value: 'x'.repeat(20), valueStore: ValueStoreKind.ENVELOPE });
      const cred = await credentials.store(ctx, { integrationId: 'acme', connectionId: 'c1', type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}` });
      vault().deny({ operations: ['setSecret'] });
      await expect(host.app.get(RotationService).rotate(ctx, cred.id)).rejects.toMatchObject({ codeName: 'FORBIDDEN' });
      vault().clearDenials();
      expect(await host.app.get(RotationService).pendingRotation(ctx, cred.id)).toMatchObject({ credentialId: cred.id });

      const payload = await service.backup(ctx);
      expect(payload.credentials.map((c) => c.connectionId).sort()).toEqual(['c1', 'e']);
      expect(payload.skipped).toEqual([expect.objectContaining({ integrationId: 'acme', connectionId: `${PENDING_ROTATION_CONNECTION_PREFIX}${cred.id}`, reason: expect.stringContaining('pending rotation value') })]);
      expect(JSON.stringify(payload)).not.toContain(mintedValue);
    } finally {
      off();
    }
  });
});
