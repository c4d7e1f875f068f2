/**
 * Emergency revoke on SQLite and PostgreSQL against the local vault: the first read after revoke()
 * returns is refused (cache hit included), every Key Vault version is disabled, envelope values are
 * refused, connection / integration / tenant targets, audited as critical with events and history;
 * un-revoke is explicit and audited and makes the value readable again.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { AuditLogEntry } from '@app/audit';
import { type DistributedLock, ManualClock, prefixedLockKey, type OperationContext } from '@app/common';
import { CredentialStatus, CredentialType, CredentialVersionEntity, ValueStoreKind, type CredentialMetadata } from '@app/credentials';
import { KeyVaultProvider } from '@app/key-vault';
import { DATABASE_KINDS, type TestDatabaseKind } from '@app/testing';
import { ROTATION_LOCK } from '../rotation.constants';
import { outboxEvents, useRotationStack } from '../rotation-stack.testing';
import { WebhookSecretErrorCode, WebhookSecretsService, WebhookSecretState, WebhookSecretVersionEntity } from '../webhooks';
import { NOTIFICATION_WEBHOOK_SECRET_CONNECTION, NOTIFICATION_WEBHOOK_SECRET_INTEGRATION } from '../notifications/notification.constants';

describe.each(DATABASE_KINDS)('emergency revoke on %s', (kind: TestDatabaseKind) => {
  let kv: KeyVaultProvider;
  const clock = new ManualClock(new Date());
  const run = randomBytes(3).toString('hex');
  let seq = 0;
  const tenant = (): OperationContext => ({ tenantId: `rev_${run}_${++seq}`, actor: { id: 'user:alice' } });
  const secret = () => 'k-' + randomBytes(18).toString('hex');
  const store = (ctx: OperationContext, valueStore: ValueStoreKind, integrationId = 'acme', connectionId = `c${++seq}`): Promise<CredentialMetadata> =>
    s.credentials.store(ctx, { integrationId, connectionId, type: CredentialType.API_KEY, value: secret(), valueStore });
  const vaultVersions = async (id: string) =>
    (await s.dataSource.getRepository(CredentialVersionEntity).find({ where: { credentialId: id } })).filter((v) => v.vaultSecretName).map((v) => [v.vaultSecretName!, v.vaultSecretVersion!] as const);

  const s = useRotationStack(kind, { clock });

  /** Runs `meanwhile` while the credential's rotation lock is held (a revoke or rotation in flight), then frees it. */
  const whileLocked = async (credentialId: string, meanwhile: () => Promise<void>) => {
    let release = () => undefined as void;
    const held = new Promise<void>((r) => (release = r));
    let reached = () => undefined as void;
    const holding = new Promise<void>((r) => (reached = r));
    const holder = s.moduleRef.get<DistributedLock>(ROTATION_LOCK).run(prefixedLockKey('credentialRotation', credentialId), () => (reached(), held), { timeoutMs: 5_000 });
    try {
      await holding;
      await meanwhile();
    } finally {
      release();
      await holder;
    }
  };
  beforeAll(() => {
    kv = s.moduleRef.get(KeyVaultProvider);
  });

  it('refuses the first read after revoke() returns (cache hit included) and disables every vault version; un-revoke restores both', async () => {
    const ctx = tenant();
    const cred = await store(ctx, ValueStoreKind.VAULT);
    await s.rotation.rotate(ctx, cred.id, { value: secret(), reason: 'routine' });
    const value = (await s.credentials.get(ctx, cred.id)).value; // now cached
    expect((await s.credentials.get(ctx, cred.id)).value).toBe(value);

    clock.advance(1000);
    const result = await s.revocation.revoke(ctx, { credentialId: cred.id }, { reason: 'leaked in a log', severity: 'high' });
    await expect(s.credentials.get(ctx, cred.id)).rejects.toMatchObject({ code: 2009 });
    expect(result).toEqual({ revoked: [cred.id], vaultVersionsDisabled: 2, vaultFailures: [], gone: [] });
    const versions = await vaultVersions(cred.id);
    expect(versions).toHaveLength(2);
    for (const [name, version] of versions) await expect(kv.getSecret(name, version)).rejects.toBeDefined();

    const audit = await s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: ctx.tenantId, action: 'revoke' } });
    expect(audit).toHaveLength(1);
    expect(JSON.stringify(audit[0])).toContain('"critical":true');
    expect(JSON.stringify(audit)).not.toContain(value);
    const events = await outboxEvents(s.dataSource, 'credential.revoked', ctx.tenantId);
    expect(events).toEqual([expect.objectContaining({ credentialId: cred.id, reason: 'leaked in a log', severity: 'high', version: 2 })]);

    // revoking again is idempotent: no second audit row or event
    await s.revocation.revoke(ctx, { credentialId: cred.id }, { reason: 'again' });
    expect(await outboxEvents(s.dataSource, 'credential.revoked', ctx.tenantId)).toHaveLength(1);

    await expect(s.revocation.unrevoke(ctx, cred.id, { reason: '' })).rejects.toMatchObject({ code: 3002 });
    clock.advance(1000);
    const back = await s.revocation.unrevoke(ctx, cred.id, { reason: 'false alarm' });
    expect(back.status).toBe('active');
    expect((await s.credentials.get(ctx, cred.id)).value).toBe(value);
    for (const [name, version] of versions) await expect(kv.getSecret(name, version)).resolves.toBeDefined();
    expect(await s.dataSource.getRepository(AuditLogEntry).count({ where: { tenantId: ctx.tenantId, action: 'unrevoke' } })).toBe(1);
    expect((await s.rotation.historyOf(ctx, cred.id)).map((h) => h.action)).toEqual(['unrevoke', 'revoke', 'rotate']);
    await expect(s.revocation.unrevoke(ctx, cred.id, { reason: 'twice' })).rejects.toMatchObject({ code: 3007 });
  });

  it.each([ValueStoreKind.ENVELOPE, ValueStoreKind.VAULT])(
    'a revoked value stays withdrawn after a rotation (%s): not by version, not by rollback; un-revoke lifts only the last revoke',
    async (valueStore) => {
      const ctx = tenant();
      const cred = await store(ctx, valueStore);
      const leaked = (await s.credentials.get(ctx, cred.id)).value;
      await s.revocation.revoke(ctx, { credentialId: cred.id }, { reason: 'leaked in a log' });
      const fresh = secret();
      await s.rotation.rotate(ctx, cred.id, { value: fresh, reason: 'replace the leaked value' });
      expect((await s.credentials.get(ctx, cred.id)).value).toBe(fresh);

      // Version 1 is the leaked value: refused by version and by rollback (which writes nothing).
      await expect(s.credentials.getVersion(ctx, cred.id, 1, { allowExpired: true })).rejects.toMatchObject({ code: 2009 });
      const before = await s.credentials.getMetadata(ctx, cred.id);
      await expect(s.rotation.rollback(ctx, cred.id, 1, { reason: 'undo' })).rejects.toMatchObject({ code: 2009 });
      expect(await s.credentials.getMetadata(ctx, cred.id)).toEqual(before);
      const listed = await s.credentials.listVersions(ctx, cred.id);
      expect(listed.map((v) => [v.version, v.revokedAt !== null])).toEqual([[2, false], [1, true]]);

      // Revoking the new value and un-revoking it (a false alarm) brings back version 2 only.
      await s.revocation.revoke(ctx, { credentialId: cred.id }, { reason: 'suspected' });
      await s.revocation.unrevoke(ctx, cred.id, { reason: 'false alarm' });
      expect((await s.credentials.get(ctx, cred.id)).value).toBe(fresh);
      await expect(s.credentials.getVersion(ctx, cred.id, 1, { allowExpired: true })).rejects.toMatchObject({ code: 2009 });
      if (valueStore === ValueStoreKind.VAULT) {
        // The vault agrees: version 1's secret version stays disabled, version 2's is enabled again.
        const rows = await s.dataSource.getRepository(CredentialVersionEntity).find({ where: { credentialId: cred.id }, order: { version: 'ASC' } });
        const readable = (v: CredentialVersionEntity) => kv.getSecret(v.vaultSecretName!, v.vaultSecretVersion!).then(() => true, () => false);
        expect(await readable(rows[0])).toBe(false);
        expect(await readable(rows[1])).toBe(true);
      }
      // The leaked value appears in no audit row.
      const audit = await s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: ctx.tenantId } });
      expect(JSON.stringify(audit)).not.toContain(leaked);
    },
  );

  it('revokes by connection, integration and tenant; envelope values are refused too', async () => {
    const ctx = tenant();
    const a1 = await store(ctx, ValueStoreKind.ENVELOPE, 'alpha', 'conn-1');
    const a2 = await store(ctx, ValueStoreKind.VAULT, 'alpha', 'conn-2');
    const b1 = await store(ctx, ValueStoreKind.ENVELOPE, 'beta', 'conn-1');
    const c1 = await store(ctx, ValueStoreKind.VAULT, 'gamma', 'conn-1');
    for (const c of [a1, a2, b1, c1]) await s.credentials.get(ctx, c.id);

    expect((await s.revocation.revoke(ctx, { integrationId: 'alpha', connectionId: 'conn-1' }, { reason: 'user left' })).revoked).toEqual([a1.id]);
    await expect(s.credentials.get(ctx, a1.id)).rejects.toMatchObject({ code: 2009 });
    await expect(s.credentials.get(ctx, a2.id)).resolves.toBeDefined();

    expect((await s.revocation.revoke(ctx, { integrationId: 'alpha' }, { reason: 'integration compromised' })).revoked.sort()).toEqual([a1.id, a2.id].sort());
    await expect(s.credentials.get(ctx, a2.id)).rejects.toMatchObject({ code: 2009 });

    // The notifications' signing secret (stored among the tenant's credentials): a tenant-wide revoke leaves it,
    // or the revoke's own credential.revoked webhooks could not be signed and were given up.
    const signing = await store(ctx, ValueStoreKind.VAULT, NOTIFICATION_WEBHOOK_SECRET_INTEGRATION, NOTIFICATION_WEBHOOK_SECRET_CONNECTION);
    const all = await s.revocation.revoke(ctx, { tenant: true }, { reason: 'tenant breach', severity: 'critical' });
    expect(all.revoked).toHaveLength(4);
    expect(all.revoked).not.toContain(signing.id);
    await expect(s.credentials.get(ctx, signing.id)).resolves.toBeDefined();
    for (const c of [b1, c1]) await expect(s.credentials.get(ctx, c.id)).rejects.toMatchObject({ code: 2009 });
    expect((await outboxEvents(s.dataSource, 'credential.revoked', ctx.tenantId)).map((e) => e.credentialId).sort()).toEqual([a1.id, a2.id, b1.id, c1.id].sort());

    await expect(s.revocation.revoke(ctx, { integrationId: 'nobody' }, { reason: 'x' })).rejects.toMatchObject({ code: 3008 });
    await expect(s.revocation.revoke(ctx, { tenant: true }, { reason: '' })).rejects.toMatchObject({ code: 3002 });
    await expect(s.revocation.revoke(tenant(), { credentialId: c1.id }, { reason: 'other tenant' })).rejects.toMatchObject({ code: 2002 });
  });

  it('a refused un-revoke — lost to a rotation, or of a credential not revoked — audits one `unrevoke` failure: 3007:NOT_REVOKED, what it answered', async () => {
    const ctx = tenant();
    const cred = await store(ctx, ValueStoreKind.VAULT);
    await s.revocation.revoke(ctx, { credentialId: cred.id }, { reason: 'suspected leak' });
    // A rotation (the credentials route, another replica: outside the rotation lock) commits while the
    // un-revoke is re-enabling the vault versions, before its status change.
    const enable = kv.updateSecretProperties.bind(kv);
    const spy = jest.spyOn(kv, 'updateSecretProperties').mockImplementationOnce(async (...args) => {
      await s.credentials.rotate(ctx, cred.id, secret());
      return enable(...args);
    });
    const refusals = async () =>
      (await s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: ctx.tenantId, resource: cred.id }, order: { sequence: 'ASC' } }))
        .filter((r) => r.result !== 'success')
        .map((r) => [r.action, r.result, r.errorCode, JSON.stringify(r.details).includes('"critical":true')]);
    try {
      await expect(s.revocation.unrevoke(ctx, cred.id, { reason: 'false alarm' })).rejects.toMatchObject({ code: 3007 });
    } finally {
      spy.mockRestore();
    }
    expect(await refusals()).toEqual([['unrevoke', 'failure', '3007:NOT_REVOKED', true]]);
    expect((await s.credentials.getMetadata(ctx, cred.id)).version).toBe(2);
    // The same answer without a race (asked again, the credential active): the same row.
    await expect(s.revocation.unrevoke(ctx, cred.id, { reason: 'again' })).rejects.toMatchObject({ code: 3007 });
    expect(await refusals()).toEqual([
      ['unrevoke', 'failure', '3007:NOT_REVOKED', true],
      ['unrevoke', 'failure', '3007:NOT_REVOKED', true],
    ]);
  });

  it("an un-revoke of an id the tenant does not have is audited as the Credentials lib audits one (denied, 2002:NOT_FOUND), at once while that credential rotates", async () => {
    const owner = tenant();
    const guess = tenant();
    const cred = await store(owner, ValueStoreKind.ENVELOPE);
    await s.revocation.revoke(owner, { credentialId: cred.id }, { reason: 'suspected leak' });
    const missing = randomUUID();
    await expect(s.revocation.unrevoke(guess, missing, { reason: 'false alarm' })).rejects.toMatchObject({ code: 2002 });
    // The owner's credential under its rotation lock: the other tenant does not wait on it.
    await whileLocked(cred.id, async () => {
      const began = Date.now();
      await expect(s.revocation.unrevoke(guess, cred.id, { reason: 'false alarm' })).rejects.toMatchObject({ code: 2002 });
      expect(Date.now() - began).toBeLessThan(5_000);
    });
    const rows = await s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: guess.tenantId }, order: { sequence: 'ASC' } });
    expect(rows.map((r) => [r.action, r.result, r.errorCode, r.resource])).toEqual([
      ['unrevoke', 'denied', '2002:NOT_FOUND', missing],
      ['unrevoke', 'denied', '2002:NOT_FOUND', cred.id],
    ]);
    expect((await s.credentials.getMetadata(owner, cred.id)).status).toBe('revoked');
  }, 60_000);

  it("a revoke of an id the tenant does not have is audited once (denied, 2002:NOT_FOUND), at once while that credential rotates", async () => {
    const owner = tenant();
    const guess = tenant();
    const cred = await store(owner, ValueStoreKind.ENVELOPE);
    const gone = await store(guess, ValueStoreKind.ENVELOPE);
    await s.credentials.delete(guess, gone.id);
    const missing = randomUUID();
    await expect(s.revocation.revoke(guess, { credentialId: missing }, { reason: 'leak' })).rejects.toMatchObject({ code: 2002 });
    await expect(s.revocation.revoke(guess, { credentialId: gone.id }, { reason: 'leak' })).rejects.toMatchObject({ code: 2002 });
    // The owner's credential under its rotation lock (a rotation in flight): the other tenant does not wait on it.
    await whileLocked(cred.id, async () => {
      const began = Date.now();
      await expect(s.revocation.revoke(guess, { credentialId: cred.id }, { reason: 'leak' })).rejects.toMatchObject({ code: 2002 });
      expect(Date.now() - began).toBeLessThan(5_000);
    });
    const rows = await s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: guess.tenantId, action: 'revoke' }, order: { sequence: 'ASC' } });
    expect(rows.map((r) => [r.action, r.result, r.errorCode, r.resource, r.actorId])).toEqual([
      ['revoke', 'denied', '2002:NOT_FOUND', missing, 'user:alice'],
      ['revoke', 'denied', '2002:NOT_FOUND', gone.id, 'user:alice'],
      ['revoke', 'denied', '2002:NOT_FOUND', cred.id, 'user:alice'],
    ]);
    expect((await s.credentials.getMetadata(owner, cred.id)).status).toBe('active');
  }, 60_000);

  it("a revoke of a credential deleted while it waited on the credential's lock is audited once (denied, 2002:NOT_FOUND)", async () => {
    const ctx = tenant();
    const cred = await store(ctx, ValueStoreKind.ENVELOPE);
    let revoking: Promise<unknown> | undefined;
    try {
      await whileLocked(cred.id, async () => {
        const lookedUp = new Promise<void>((r) => {
          const getMetadata = s.credentials.getMetadata.bind(s.credentials);
          jest.spyOn(s.credentials, 'getMetadata').mockImplementationOnce(async (...args) => {
            const m = await getMetadata(...args);
            r();
            return m;
          });
        });
        revoking = s.revocation.revoke(ctx, { credentialId: cred.id }, { reason: 'leak' }).catch((e: unknown) => e);
        await lookedUp; // found, now waiting on the lock
        await s.credentials.delete(ctx, cred.id);
      });
    } finally {
      jest.restoreAllMocks();
    }
    expect(await revoking).toMatchObject({ code: 2002 });
    const rows = await s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: ctx.tenantId, action: 'revoke' }, order: { sequence: 'ASC' } });
    expect(rows.map((r) => [r.result, r.errorCode, r.resource])).toEqual([['denied', '2002:NOT_FOUND', cred.id]]);
  }, 60_000);

  it.each([
    ['an integration-wide', { integrationId: 'alpha' }],
    ['a tenant-wide', { tenant: true }],
  ] as const)('%s revoke revokes every credential still there; one deleted before its turn is reported gone, neither failing it nor audited as refused', async (_, target) => {
    const ctx = tenant();
    const a = await store(ctx, ValueStoreKind.VAULT, 'alpha');
    const b = await store(ctx, ValueStoreKind.ENVELOPE, 'alpha');
    const c = await store(ctx, ValueStoreKind.VAULT, 'alpha');
    // Another request deletes b after the revoke listed it, as the revoke reaches b (its look-up of b, under b's lock).
    const getMetadata = s.credentials.getMetadata.bind(s.credentials);
    let deleted = false;
    jest.spyOn(s.credentials, 'getMetadata').mockImplementation(async (...args) => {
      if (args[1] === b.id && !deleted) {
        deleted = true;
        await s.credentials.delete({ ...ctx, actor: { id: 'user:bob' } }, b.id);
      }
      return getMetadata(...args);
    });
    let result;
    try {
      result = await s.revocation.revoke(ctx, target, { reason: 'integration compromised' });
    } finally {
      jest.restoreAllMocks();
    }
    expect(deleted).toBe(true);
    expect({ ...result, revoked: [...result.revoked].sort() }).toEqual({ revoked: [a.id, c.id].sort(), gone: [b.id], vaultVersionsDisabled: 2, vaultFailures: [] });
    // The trail (before this spec's own reads): a revoke of each one revoked, bob's delete, no refusal of alice's revoke.
    const rows = await s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: ctx.tenantId }, order: { sequence: 'ASC' } });
    expect(rows.filter((r) => r.result !== 'success').map((r) => [r.action, r.result, r.errorCode, r.resource])).toEqual([]);
    expect(rows.filter((r) => r.action === 'revoke').map((r) => r.resource).sort()).toEqual([a.id, c.id].sort());
    expect((await outboxEvents(s.dataSource, 'credential.revoked', ctx.tenantId)).map((e) => e.credentialId).sort()).toEqual([a.id, c.id].sort());
    expect(rows.filter((r) => r.action === 'delete').map((r) => [r.resource, r.actorId])).toEqual([[b.id, 'user:bob']]);
    for (const cred of [a, c]) await expect(s.credentials.get(ctx, cred.id)).rejects.toMatchObject({ code: 2009 });
    await expect(s.credentials.getMetadata(ctx, b.id)).rejects.toMatchObject({ code: 2002 });
  }, 60_000);

  it("an un-revoke of an internal row (a pending rotation value) is refused before the vault, in the trail as one `unrevoke` failure: 2001:VALIDATION", async () => {
    const ctx = tenant();
    const cred = await store(ctx, ValueStoreKind.VAULT);
    const pending = await s.credentials.store(ctx, { integrationId: 'acme', connectionId: `rotation-pending.${cred.id}`, type: CredentialType.CUSTOM_SECRET, value: secret() }, { internal: true });
    await s.revocation.revoke(ctx, { credentialId: pending.id }, { reason: 'suspected leak' });
    await expect(s.revocation.unrevoke(ctx, pending.id, { reason: 'false alarm' })).rejects.toMatchObject({ code: 2001, field: 'connectionId' });
    expect((await s.credentials.getMetadata(ctx, pending.id)).status).toBe('revoked');
    const rows = await s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: ctx.tenantId, resource: pending.id }, order: { sequence: 'ASC' } });
    expect(rows.filter((r) => ['revoke', 'unrevoke'].includes(r.action)).map((r) => [r.action, r.result, r.errorCode])).toEqual([
      ['revoke', 'success', null],
      ['unrevoke', 'failure', '2001:VALIDATION'],
    ]);
  });

  it('a revoke of a webhook secret discards its staged successor: the staging credential deleted, audited, nothing left to activate', async () => {
    const ctx = tenant();
    const webhooks = s.moduleRef.get(WebhookSecretsService);
    const target = (connectionId: string) => ({ tenantId: ctx.tenantId, integrationId: 'manual', connectionId, context: ctx });
    const stagingOf = async (credentialId: string) =>
      (await s.dataSource.getRepository(WebhookSecretVersionEntity).findOneByOrFail({ credentialId, state: WebhookSecretState.PENDING })).stagingCredentialId!;
    const { credential } = await webhooks.create(ctx, target('acct-1'));
    const staged = await webhooks.stageConnection(target('acct-1'));
    const stagingId = await stagingOf(credential.id);

    expect(await s.revocation.revoke(ctx, { credentialId: credential.id }, { reason: 'secret leaked' })).toMatchObject({ revoked: [credential.id], gone: [] });
    await expect(s.credentials.getMetadata(ctx, stagingId)).rejects.toMatchObject({ code: 2002 });
    const row = await s.dataSource.getRepository(WebhookSecretVersionEntity).findOneByOrFail({ id: staged.rotationId });
    expect(row).toMatchObject({ state: WebhookSecretState.RETIRED, lastError: 'REVOKED', stagingCredentialId: null });
    const discarded = await s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: ctx.tenantId, action: 'webhook_secret.staged_discarded' } });
    expect(discarded.map((r) => [r.resource, r.result, r.details?.rotationId, r.details?.reason])).toEqual([[credential.id, 'success', staged.rotationId, 'REVOKED']]);
    // Un-revoked, it has nothing staged: the successor staged before the revoke is not activated silently.
    await s.revocation.unrevoke(ctx, credential.id, { reason: 'false alarm' });
    await expect(webhooks.activateConnection(target('acct-1'))).rejects.toMatchObject({ code: WebhookSecretErrorCode.WEBHOOK_NOTHING_STAGED });

    // An integration-wide revoke lists the staging credential too: discarded with its secret, not reported as gone.
    const { credential: other } = await webhooks.create(ctx, target('acct-2'));
    await webhooks.stageConnection(target('acct-2'));
    const otherStaging = await stagingOf(other.id);
    const all = await s.revocation.revoke(ctx, { integrationId: 'manual' }, { reason: 'integration compromised' });
    expect(all).toMatchObject({ revoked: expect.arrayContaining([credential.id, other.id]), gone: [] });
    await expect(s.credentials.getMetadata(ctx, otherStaging)).rejects.toMatchObject({ code: 2002 });

    // Revoked before revokes discarded the staged secret (here: its status set directly): a revoke again finishes it.
    const { credential: third } = await webhooks.create(ctx, target('acct-3'));
    await webhooks.stageConnection(target('acct-3'));
    const thirdStaging = await stagingOf(third.id);
    await s.credentials.updateMetadata(ctx, third.id, { status: CredentialStatus.REVOKED });
    await s.revocation.revoke(ctx, { credentialId: third.id }, { reason: 'finish it' });
    await expect(s.credentials.getMetadata(ctx, thirdStaging)).rejects.toMatchObject({ code: 2002 });
  });

  it('a rotation that made the credential active during the revoke is revoked again, and recorded as a revoke: audit row, event, history', async () => {
    const ctx = tenant();
    const cred = await store(ctx, ValueStoreKind.VAULT);
    // The rotation (the credentials route, another replica: outside the rotation lock) commits after the revoke's
    // status change, while it disables the vault versions: the revoke must change the status a second time.
    const disable = kv.updateSecretProperties.bind(kv);
    const rotatedValue = secret();
    const spy = jest.spyOn(kv, 'updateSecretProperties').mockImplementationOnce(async (...args) => {
      await s.credentials.rotate(ctx, cred.id, rotatedValue);
      return disable(...args);
    });
    try {
      await s.revocation.revoke(ctx, { credentialId: cred.id }, { reason: 'leaked in a log', severity: 'high' });
    } finally {
      spy.mockRestore();
    }
    expect(await s.credentials.getMetadata(ctx, cred.id)).toMatchObject({ status: 'revoked', version: 2 });
    await expect(s.credentials.get(ctx, cred.id)).rejects.toMatchObject({ code: 2009 });

    // An auditor sees two revokes by the same operator for the same reason, the second naming the rotation's version
    // and why it came; an event consumer gets a `credential.revoked` for each version that was live.
    const revokes = await s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: ctx.tenantId, action: 'revoke' }, order: { sequence: 'ASC' } });
    expect(revokes.map((r) => [r.actorId, r.result, r.details])).toEqual([
      ['user:alice', 'success', { reason: 'leaked in a log', severity: 'high', critical: true, version: 1 }],
      ['user:alice', 'success', { reason: 'leaked in a log', severity: 'high', critical: true, version: 2, again: true, cause: 'rotated_during_revoke', revokedVersion: 1 }],
    ]);
    const events = await outboxEvents(s.dataSource, 'credential.revoked', ctx.tenantId);
    expect(events.map((e) => [e.version, e.reason, e.severity, e.actorId, e.again ?? false]).sort()).toEqual([
      [1, 'leaked in a log', 'high', 'user:alice', false],
      [2, 'leaked in a log', 'high', 'user:alice', true],
    ]);
    const history = await s.rotation.historyOf(ctx, cred.id);
    expect(history.filter((h) => h.action === 'revoke').map((h) => [h.toVersion, h.reason, h.actor]).sort()).toEqual([
      [1, 'leaked in a log', 'user:alice'],
      [2, 'leaked in a log', 'user:alice'],
    ]);
    const persisted = JSON.stringify([revokes, events, history]);
    expect(persisted).not.toContain(rotatedValue);
  });

  it('un-revoke re-enables the vault versions before its transaction: a slow vault holds up no other write', async () => {
    const ctx = tenant();
    const cred = await store(ctx, ValueStoreKind.VAULT);
    const other = await store(ctx, ValueStoreKind.VAULT);
    await s.revocation.revoke(ctx, { credentialId: cred.id }, { reason: 'suspected leak' });
    s.emu.injectFault({ kind: 'latency', latencyMs: 1500, operations: ['updateSecret'], count: 1 });
    const lifting = s.revocation.unrevoke(ctx, cred.id, { reason: 'false alarm' });
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    await s.credentials.updateMetadata(ctx, other.id, { tags: { team: 'payments' } });
    expect(Date.now() - started).toBeLessThan(800);
    await expect(lifting).resolves.toMatchObject({ status: 'active' });
    expect(await s.dataSource.getRepository(AuditLogEntry).count({ where: { tenantId: ctx.tenantId, action: 'unrevoke' } })).toBe(1);
    expect((await s.rotation.historyOf(ctx, cred.id)).map((h) => h.action).sort()).toEqual(['revoke', 'unrevoke']); // one instant (a manual clock): sorted
  });
});
