/**
 * Integration: CredentialsModule with the real KeyVaultProvider (real SDK, real HTTPS) against the
 * emulator, the real AuditService, and real SQLite / PostgreSQL. Vault traffic is counted by the
 * emulator itself.
 */
import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { Test, type TestingModule } from '@nestjs/testing';
import { AUDIT_TABLE, AuditService } from '@app/audit';
import { ManualClock, type OperationContext, OutboxDispatcher, OutboxEventEntity, TransactionGate, TransactionRunner } from '@app/common';
import { KeyVaultProvider } from '@app/key-vault';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, credentialsStackImports, DATABASE_KINDS, rejection, type TestDatabase } from '@app/testing';
import forge from 'node-forge';
import { DataSource } from 'typeorm';
import {
  ConnectionStatus,
  CredentialAlreadyExistsError,
  CredentialCache,
  CredentialConflictError,
  CredentialEvents,
  CredentialExpiryScanner,
  CredentialIntegrityError,
  CredentialNotFoundError,
  CredentialRevokedError,
  CredentialsService,
  CredentialStatus,
  CredentialType,
  CredentialValidationError,
  CredentialVersionNotFoundError,
  DataKeyService,
  EnvelopeValueStore,
  ReadAuditCoalescer,
  ValueStoreKind,
  credentialSecretName,
  type CredentialEvent,
  type CredentialsModuleOptions,
  type UpdateMetadataInput,
} from './index';
import { CredentialReader } from './credential.reader';
import { VaultValueStore } from './stores/vault-value-store';
import type { UnpackedReads } from './internal/packed-read';

const DAY = 86_400_000;
const TTL = 60_000;

function selfSignedCert(notAfter: Date): string {
  const keys = forge.pki.rsa.generateKeyPair(1024);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '0a';
  cert.validity.notBefore = new Date(Date.now() - DAY);
  cert.validity.notAfter = notAfter;
  const attrs = [{ name: 'commonName', value: 'client.int.example' }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

describe.each(DATABASE_KINDS)('CredentialsModule on %s (emulator, real KeyVaultProvider, real audit)', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let moduleRef: TestingModule;
  let service: CredentialsService;
  let cache: CredentialCache;
  let dataSource: DataSource;
  let vault: KeyVaultProvider;
  let audit: AuditService;
  let clock: ManualClock;
  const logger = new CapturingLogger();
  const events: CredentialEvent[] = [];
  /** Every value this suite ever stored: none may appear in a metadata/audit row or a log line. */
  const values = new Set<string>();

  const run = randomBytes(3).toString('hex');
  const ctxA: OperationContext = { tenantId: `acme_${run}.prod`, actor: { id: 'user:alice' }, correlationId: 'corr-1' };
  const ctxB: OperationContext = { tenantId: `Acme_${run}.prod`, actor: { id: 'user:mallory' } };

  const secret = (prefix = 'tok') => {
    const v = `${prefix}_${randomBytes(18).toString('base64url')}`;
    values.add(v);
    return v;
  };
  /** Polls `check` until it passes (events of state changes arrive through the outbox dispatcher, after commit). */
  const eventually = async (check: () => unknown, timeoutMs = 10_000) => {
    for (const deadline = Date.now() + timeoutMs; ; await new Promise((r) => setTimeout(r, 10))) {
      try {
        return await check();
      } catch (e) {
        if (Date.now() > deadline) throw e;
      }
    }
  };
  /**
   * Waits until the outbox has delivered every event that is due. The dispatcher delivers oldest first, and the 2,048
   * credentials storeOthers makes leave their events behind: on a loaded 2-core machine hundreds were still queued when
   * a later test waited (eventually's 10 s) for an event of its own, and timed out with that event still queued
   * behind them. Tests that wait for their events start from a delivered outbox.
   */
  const outboxCaughtUp = async () => {
    const due = async () => Number((await dataSource.query(`SELECT COUNT(*) AS n FROM cv_outbox WHERE delivered_at IS NULL AND available_at <= ${Date.now()}`))[0].n);
    for (const deadline = Date.now() + 110_000; (await due()) > 0; await new Promise((r) => setTimeout(r, 200))) {
      if (Date.now() > deadline) throw new Error(`the outbox still has ${await due()} events due after 110 s`);
    }
  };
  const getSecretCalls = () => emu.stats().byOperation.getSecret ?? 0;
  const setSecretCalls = () => emu.stats().byOperation.setSecret ?? 0;
  /**
   * Stores `n` envelope credentials of tenant A under `integrationId` (storeMany, 100 at a time); their ids. storeMany
   * writes a batch's values at once, each envelope value in a transaction of its own: on SQLite 1,000 of them queue at
   * the transaction gate, and on a loaded machine the last ones waited past its 5 s and were refused (LockTimeoutError).
   */
  const storeOthers = async (integrationId: string, n: number): Promise<string[]> => {
    const ids: string[] = [];
    const batch = 100;
    for (let from = 0; from < n; from += batch) {
      const items = Array.from({ length: Math.min(batch, n - from) }, (_, i) => ({
        ctx: ctxA,
        input: { integrationId, connectionId: `other-${from + i}`, type: CredentialType.OAUTH_ACCESS_TOKEN, value: secret() },
      }));
      for (const r of await service.storeMany(items)) {
        if (r.credential === undefined) throw r.error; // what refused the item, not "reading 'id' of undefined"
        ids.push(r.credential.id);
      }
    }
    return ids;
  };
  const countRows = async (table: string) => Number((await dataSource.query(`SELECT COUNT(*) AS n FROM ${table}`))[0].n);

  beforeAll(async () => {
    Logger.overrideLogger(logger);
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 }); // deletes soft-delete secrets
    db = await createTestDatabase(kind);
    clock = new ManualClock(new Date());
    const options: CredentialsModuleOptions = {
      clock,
      // On PostgreSQL the cache fans out over NOTIFY: these tests read through the cache, not its heartbeat, so a
      // heartbeat late on a loaded machine must not drop it (the drop is tested in cache/).
      cache: { ttlMs: TTL, jitterRatio: 0.1, maxStaleMs: 30_000, heartbeat: { lostAfterMs: 30_000 } },
      vault: { maxVersionsPerGeneration: 3 },
      integrations: ['github', 'notion'],
    };
    moduleRef = await Test.createTestingModule({
      imports: credentialsStackImports({
        database: db.options,
        vault: emu,
        keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20, breaker: { consecutiveFailures: 1000 } } },
        credentials: options,
        // Both registration styles are exercised: forRoot on one database, forRootAsync on the other.
        credentialsRegistration: kind === 'sqlite' ? 'forRoot' : 'forRootAsync',
      }),
    })
      .setLogger(logger)
      .compile();
    await moduleRef.init();
    service = moduleRef.get(CredentialsService);
    cache = moduleRef.get(CredentialCache);
    dataSource = moduleRef.get(DataSource);
    vault = moduleRef.get(KeyVaultProvider);
    audit = moduleRef.get(AuditService);
    moduleRef.get(EventEmitter2).onAny((_name: string | string[], payload: CredentialEvent) => {
      events.push(payload);
    });
  });

  afterAll(async () => {
    await moduleRef?.close();
    await emu?.stop();
    await db?.drop();
    Logger.overrideLogger(new Logger());
  });

  describe('store and read', () => {
    it('stores a vault credential and reads it back with metadata, never exposing the value in metadata', async () => {
      const value = secret('sk_live');
      const meta = await service.store(ctxA, {
        integrationId: 'stripe',
        connectionId: 'acct_1',
        type: CredentialType.API_KEY,
        value,
        tags: { env: 'prod' },
      });
      expect(meta).toMatchObject({
        tenantId: ctxA.tenantId,
        integrationId: 'stripe',
        connectionId: 'acct_1',
        type: CredentialType.API_KEY,
        valueStore: ValueStoreKind.VAULT,
        version: 1,
        rowVersion: 1,
        status: CredentialStatus.ACTIVE,
        tags: { env: 'prod' },
        maskedValue: `***${value.slice(-3)}`,
        createdBy: 'user:alice',
      });
      expect(JSON.stringify(meta)).not.toContain(value);

      const read = await service.get(ctxA, meta.id);
      expect(read.value).toBe(value);
      expect(read.metadata.id).toBe(meta.id);
      expect(await service.getMetadata(ctxA, meta.id)).toEqual(meta);

      // The vault secret carries a deterministic name, tags (no value) and a content type.
      const name = credentialSecretName({ tenantId: ctxA.tenantId, integrationId: 'stripe', type: CredentialType.API_KEY, connectionId: 'acct_1' }, 0);
      const inVault = await vault.getSecret(name);
      expect(inVault.value).toBe(value);
      expect(inVault.properties.contentType).toBe('text/plain');
      expect(inVault.properties.tags).toMatchObject({ 'cv-tenant': ctxA.tenantId, 'cv-integration': 'stripe', 'cv-type': 'api_key', 'cv-credential': meta.id });
    });

    it.each([ValueStoreKind.VAULT, ValueStoreKind.ENVELOPE])('stores a credential with its history in one commit (%s): versions in order, the last current, one audit row', async (valueStore) => {
      const earlier = [secret(), secret(), secret(), secret()]; // past a secret-name generation (3 versions each here)
      const value = secret();
      const meta = await service.store(ctxA, { integrationId: 'stripe', connectionId: `hist-${valueStore}`, type: CredentialType.API_KEY, value, valueStore, history: earlier.map((v) => ({ value: v })) });
      expect(meta.version).toBe(5);
      expect((await service.get(ctxA, meta.id)).value).toBe(value);
      for (let v = 1; v <= 4; v++) expect((await service.getVersion(ctxA, meta.id, v)).value).toBe(earlier[v - 1]);
      expect((await service.listVersions(ctxA, meta.id)).map((v) => v.version).sort()).toEqual([1, 2, 3, 4, 5]);
      await audit.flush();
      const rows = (await audit.query({ tenantId: ctxA.tenantId, resource: meta.id, limit: 100 })).items.filter((r) => r.action === 'store');
      expect(rows).toEqual([expect.objectContaining({ result: 'success', details: expect.objectContaining({ version: 5, history: 4 }) })]);
    });

    it('a store with history whose value write fails midway commits nothing: no credential, the slot still free', async () => {
      const connectionId = 'hist-fail';
      // The first write is slow; the second fails: two values written (one kept, one refused), none committed.
      emu.injectFault({ kind: 'latency', latencyMs: 400, count: 1, operations: ['setSecret'] });
      const pending = service.store(ctxA, { integrationId: 'stripe', connectionId, type: CredentialType.API_KEY, value: secret(), valueStore: ValueStoreKind.VAULT, history: [{ value: secret() }, { value: secret() }] });
      await new Promise((r) => setTimeout(r, 150));
      emu.injectFault({ kind: 'status', status: 500, count: 1, operations: ['setSecret'] });
      await expect(pending).rejects.toBeDefined();
      expect((await service.list(ctxA, { integrationId: 'stripe', connectionId })).items).toEqual([]);
      expect((await service.store(ctxA, { integrationId: 'stripe', connectionId, type: CredentialType.API_KEY, value: secret(), valueStore: ValueStoreKind.VAULT })).version).toBe(1);
    });

    it('stores OAuth access tokens in the envelope store by default (ciphertext in the DB, key in the vault)', async () => {
      const value = secret('ya29');
      const meta = await service.store(ctxA, { integrationId: 'google', connectionId: 'u1', type: CredentialType.OAUTH_ACCESS_TOKEN, value, expiresAt: new Date(clock.now().getTime() + 3600_000) });
      expect(meta.valueStore).toBe(ValueStoreKind.ENVELOPE);
      const rows = await dataSource.query(`SELECT * FROM cv_envelope_values WHERE credential_id = '${meta.id}'`);
      expect(rows).toHaveLength(1);
      expect(JSON.stringify(rows)).not.toContain(value);
      expect((await service.get(ctxA, meta.id)).value).toBe(value);
    });

    it('honours a per-call value-store override', async () => {
      const value = secret('api');
      const meta = await service.store(ctxA, { integrationId: 'stripe', connectionId: 'acct_env', type: CredentialType.API_KEY, value, valueStore: ValueStoreKind.ENVELOPE });
      expect(meta.valueStore).toBe(ValueStoreKind.ENVELOPE);
      expect((await service.get(ctxA, meta.id)).value).toBe(value);
    });

    it('reads the expiry of a client certificate from the certificate itself', async () => {
      const notAfter = new Date(Date.now() + 40 * DAY);
      notAfter.setMilliseconds(0);
      const pem = selfSignedCert(notAfter);
      values.add(pem);
      const meta = await service.store(ctxA, {
        integrationId: 'bank',
        connectionId: 'mtls',
        type: CredentialType.CLIENT_CERTIFICATE,
        value: pem,
        expiresAt: new Date(Date.now() + 999 * DAY),
      });
      expect(meta.expiresAt?.toISOString()).toBe(notAfter.toISOString());
      expect(meta.certificate?.subject).toContain('client.int.example');
      expect(meta.maskedValue).toBe('***');
      expect((await service.get(ctxA, meta.id)).value).toBe(pem);
    });

    it('refuses a duplicate (integration, connection, type) and invalid input, writing nothing', async () => {
      const first = await service.store(ctxA, { integrationId: 'dup', connectionId: 'c', type: CredentialType.API_KEY, value: secret() });
      const setsBefore = setSecretCalls();
      const rowsBefore = await countRows('cv_credentials');
      const dup = await rejection(service.store(ctxA, { integrationId: 'dup', connectionId: 'c', type: CredentialType.API_KEY, value: secret() }));
      expect(dup).toBeInstanceOf(CredentialAlreadyExistsError);
      expect((dup as CredentialAlreadyExistsError).existingId).toBe(first.id);
      for (const bad of [
        { integrationId: 'bad id', connectionId: 'c', type: CredentialType.API_KEY, value: 'x'.repeat(20) },
        { integrationId: 'ok', connectionId: 'c', type: 'nope' as CredentialType, value: 'x'.repeat(20) },
        { integrationId: 'ok', connectionId: 'c', type: CredentialType.WEBHOOK_SECRET, value: 'too-short-secret' },
        { integrationId: 'ok', connectionId: 'c', type: CredentialType.API_KEY, value: 'x'.repeat(30_000) },
        { integrationId: 'ok', connectionId: 'c', type: CredentialType.API_KEY, value: 'v'.repeat(20), tags: Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, 'v'])) },
      ]) {
        expect(await rejection(service.store(ctxA, bad))).toBeInstanceOf(CredentialValidationError);
      }
      expect(setSecretCalls()).toBe(setsBefore);
      expect(await countRows('cv_credentials')).toBe(rowsBefore);
    });

    it("refuses a connection id reserved for the libs' internal credentials (rotation-pending.*, whsec-pending.*) unless the write says internal, in store and storeMany, writing nothing", async () => {
      const setsBefore = setSecretCalls();
      const rowsBefore = await countRows('cv_credentials');
      const { id: target } = await service.store(ctxA, { integrationId: 'reserved', connectionId: 'main', type: CredentialType.API_KEY, value: secret() });
      for (const [connectionId, type] of [
        [`rotation-pending.${target}`, CredentialType.CUSTOM_SECRET],
        ['whsec-pending.r1', CredentialType.CUSTOM_SECRET],
        ['whsec-pending.r1', CredentialType.API_KEY],
      ] as const) {
        const input = { integrationId: 'reserved', connectionId, type, value: secret(), tags: { 'cv.rotation.minted-for': target, 'cv.rotation.minted-based-on': '1' } };
        const refused = await rejection(service.store(ctxA, input));
        expect(refused).toBeInstanceOf(CredentialValidationError);
        expect(refused).toMatchObject({ field: 'connectionId', message: expect.stringContaining('reserved') });
        expect((refused as Error).message).not.toContain(connectionId);
        expect(await rejection(service.store(ctxA, input, { internal: 'yes' as never }))).toBeInstanceOf(CredentialValidationError);
        const [many] = await service.storeMany([{ ctx: ctxA, input }]);
        expect(many.error).toBeInstanceOf(CredentialValidationError);
      }
      expect(setSecretCalls()).toBe(setsBefore + 1);
      expect(await countRows('cv_credentials')).toBe(rowsBefore + 1);
      expect((await service.list(ctxA, { integrationId: 'reserved', includeInternal: true })).items.map((c) => c.id)).toEqual([target]);
      // The libs built on this one write theirs saying so.
      const pending = await service.store(ctxA, { integrationId: 'reserved', connectionId: `rotation-pending.${target}`, type: CredentialType.CUSTOM_SECRET, value: secret() }, { internal: true });
      expect(pending.connectionId).toBe(`rotation-pending.${target}`);
    });

    it("refuses every change of an internal credential but delete and revoke (tags, expiry, status, rotate, rollback, unrevoke), changing nothing", async () => {
      const { id: target } = await service.store(ctxA, { integrationId: 'reserved-edit', connectionId: 'main', type: CredentialType.API_KEY, value: secret() });
      const tags = { 'cv.rotation.minted-for': target, 'cv.rotation.minted-based-on': '1' };
      const value = secret();
      const pending = await service.store(ctxA, { integrationId: 'reserved-edit', connectionId: `rotation-pending.${target}`, type: CredentialType.CUSTOM_SECRET, value, tags }, { internal: true });
      const setsBefore = setSecretCalls();
      const versionsBefore = await countRows('cv_credential_versions');
      const expectRefused = async (change: Promise<unknown>) => {
        const refused = await rejection(change);
        expect(refused).toBeInstanceOf(CredentialValidationError);
        expect(refused).toMatchObject({ code: 2001, field: 'connectionId', message: expect.stringContaining('reserved') });
        expect((refused as Error).message).not.toContain(pending.connectionId);
      };
      // A forged tag is what PendingRotationValues trusts: the version it was minted for.
      await expectRefused(service.updateMetadata(ctxA, pending.id, { tags: { ...tags, 'cv.rotation.minted-based-on': '7' } }));
      await expectRefused(service.updateMetadata(ctxA, pending.id, { expiresAt: new Date(clock.now().getTime() + DAY) }));
      await expectRefused(service.updateMetadata(ctxA, pending.id, { status: CredentialStatus.NEEDS_REAUTH }));
      await expectRefused(service.updateMetadata(ctxA, pending.id, { status: CredentialStatus.REVOKED, tags: {} }));
      await expectRefused(service.rotate(ctxA, pending.id, secret()));
      await expectRefused(service.rollback(ctxA, pending.id, 1));
      const after = await service.getMetadata(ctxA, pending.id);
      expect(after).toMatchObject({ rowVersion: pending.rowVersion, version: 1, tags, status: CredentialStatus.ACTIVE, expiresAt: pending.expiresAt });
      expect((await service.get(ctxA, pending.id)).value).toBe(value);
      expect(setSecretCalls()).toBe(setsBefore);
      expect(await countRows('cv_credential_versions')).toBe(versionsBefore);
      // Revoke (a status change to revoked alone, or `revoke`) and delete are still the tenant's to make; un-revoke is not.
      expect((await service.updateMetadata(ctxA, pending.id, { status: CredentialStatus.REVOKED })).status).toBe(CredentialStatus.REVOKED);
      await service.revoke(ctxA, pending.id);
      await expectRefused(service.unrevoke(ctxA, pending.id));
      expect((await service.getMetadata(ctxA, pending.id)).status).toBe(CredentialStatus.REVOKED);
      await service.delete(ctxA, pending.id);
      await expect(service.getMetadata(ctxA, pending.id)).rejects.toBeInstanceOf(CredentialNotFoundError);
      // Every refusal is in the trail as the change asked for, with its code, in order — the un-revoke's too.
      await audit.flush();
      const rows = (await audit.query({ tenantId: ctxA.tenantId, resource: pending.id, order: 'asc', limit: 100 })).items.filter((r) => !['read', 'suspicious_activity'].includes(r.action));
      expect(rows.map((r) => [r.action, r.result, r.errorCode ?? null])).toEqual([
        ['store', 'success', null],
        ...Array.from({ length: 4 }, () => ['update_metadata', 'failure', '2001:VALIDATION']),
        ['rotate', 'failure', '2001:VALIDATION'],
        ['rollback', 'failure', '2001:VALIDATION'],
        ['update_metadata', 'success', null],
        ['unrevoke', 'failure', '2001:VALIDATION'],
        ['delete', 'success', null],
      ]);
      expect(rows.every((r) => r.actorId === ctxA.actor.id)).toBe(true);
      expect(JSON.stringify(rows)).not.toContain(value);
    });

    it('audits a revoke or un-revoke refused for a credential it cannot find, as rotate and delete are (denied, the id only if it is one)', async () => {
      const ctxR: OperationContext = { tenantId: `revoke-refused-${run}`, actor: { id: 'user:rr' } };
      const other = await service.store(ctxA, { integrationId: 'revoke-refused', connectionId: 'c', type: CredentialType.API_KEY, value: secret() });
      const pasted = `pasted-${secret()}`;
      for (const id of [other.id, pasted]) {
        expect(await rejection(service.revoke(ctxR, id))).toBeInstanceOf(CredentialNotFoundError);
        expect(await rejection(service.unrevoke(ctxR, id))).toBeInstanceOf(CredentialNotFoundError);
      }
      await audit.flush();
      const rows = (await audit.query({ tenantId: ctxR.tenantId, order: 'asc', limit: 100 })).items.filter((r) => r.action !== 'suspicious_activity');
      expect(rows.map((r) => [r.action, r.result, r.errorCode ?? null, r.resource])).toEqual([
        ['revoke', 'denied', '2002:NOT_FOUND', other.id],
        ['unrevoke', 'denied', '2002:NOT_FOUND', other.id],
        ['revoke', 'denied', '2002:NOT_FOUND', '(not a credential id)'],
        ['unrevoke', 'denied', '2002:NOT_FOUND', '(not a credential id)'],
      ]);
      expect(JSON.stringify(rows)).not.toContain(pasted);
      expect((await service.getMetadata(ctxA, other.id)).status).toBe(CredentialStatus.ACTIVE);
    });
  });

  describe('rotate, versions, rollback, compare-and-set', () => {
    it('rotates to a new version, invalidates the cache, keeps old versions readable, rolls back', async () => {
      const v1 = secret('v1');
      const v2 = secret('v2');
      const meta = await service.store(ctxA, { integrationId: 'github', connectionId: 'org-1', type: CredentialType.OAUTH_REFRESH_TOKEN, value: v1 });
      expect((await service.get(ctxA, meta.id)).value).toBe(v1); // warm the cache

      const rotated = await service.rotate(ctxA, meta.id, v2, { expectedVersion: 1 });
      expect(rotated).toMatchObject({ id: meta.id, version: 2, rowVersion: 2 });
      expect(rotated.rotatedAt).toBeInstanceOf(Date);
      expect((await service.get(ctxA, meta.id)).value).toBe(v2);
      expect((await service.getVersion(ctxA, meta.id, 1)).value).toBe(v1);

      const back = await service.rollback(ctxA, meta.id, 1, { expectedVersion: 2 });
      expect(back).toMatchObject({ version: 3, rowVersion: 3, maskedValue: `***${v1.slice(-3)}` });
      expect((await service.get(ctxA, meta.id)).value).toBe(v1);
      const versions = await service.listVersions(ctxA, meta.id);
      expect(versions.map((v) => [v.version, v.sourceVersion, v.current])).toEqual([
        [3, 1, true],
        [2, null, false],
        [1, null, false],
      ]);
      expect(await rejection(service.getVersion(ctxA, meta.id, 9))).toBeInstanceOf(CredentialVersionNotFoundError);
      expect(await rejection(service.rollback(ctxA, meta.id, 9))).toBeInstanceOf(CredentialVersionNotFoundError);
      // Past the INTEGER column's range: no such version either (PostgreSQL would refuse the query).
      for (const huge of [2 ** 31, Number.MAX_SAFE_INTEGER]) {
        expect(await rejection(service.getVersion(ctxA, meta.id, huge))).toBeInstanceOf(CredentialVersionNotFoundError);
        expect(await rejection(service.rollback(ctxA, meta.id, huge))).toBeInstanceOf(CredentialVersionNotFoundError);
      }
    });

    /**
     * Runs `rotate` with its value write held until `meanwhile` has run: `before` the write (the row
     * loaded, nothing written yet) or `after` it (the value written, the compare-and-set not yet).
     */
    const rotateAround = async (valueStore: ValueStoreKind, id: string, at: 'before' | 'after', meanwhile: () => Promise<unknown>) => {
      const store = valueStore === ValueStoreKind.ENVELOPE ? moduleRef.get(EnvelopeValueStore) : moduleRef.get(VaultValueStore);
      const original = store.write.bind(store);
      let written!: () => void;
      const wrote = new Promise<void>((resolve) => (written = resolve));
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const spy = jest.spyOn(store, 'write').mockImplementationOnce(async (request) => {
        if (at === 'before') {
          written();
          await held;
          return original(request);
        }
        const pointer = await original(request);
        written();
        await held;
        return pointer;
      });
      try {
        const rotating = service.rotate(ctxA, id, secret()).then(
          (meta) => ({ meta }),
          (error: unknown) => ({ error }),
        );
        await wrote;
        await meanwhile();
        release();
        return await rotating;
      } finally {
        spy.mockRestore();
      }
    };
    const envelopeRows = async (id: string) => Number((await dataSource.query(`SELECT COUNT(*) AS n FROM cv_envelope_values WHERE credential_id = '${id}'`))[0].n);

    it('a rotate that loses to a delete leaves no ciphertext behind: the value it wrote is discarded, not orphaned', async () => {
      const meta = await service.store(ctxA, { integrationId: 'race', connectionId: 'delete', type: CredentialType.API_KEY, value: secret(), valueStore: ValueStoreKind.ENVELOPE });
      const outcome = await rotateAround(ValueStoreKind.ENVELOPE, meta.id, 'before', () => service.delete(ctxA, meta.id));
      expect('error' in outcome && outcome.error).toBeInstanceOf(CredentialNotFoundError);
      expect(await envelopeRows(meta.id)).toBe(0);
    });

    it.each([ValueStoreKind.ENVELOPE, ValueStoreKind.VAULT])(
      'a rotate that loses its compare-and-set and retries (%s): the value of the lost attempt is discarded',
      async (valueStore) => {
        const meta = await service.store(ctxA, { integrationId: 'race', connectionId: `retry-${valueStore}`, type: CredentialType.API_KEY, value: secret(), valueStore });
        const outcome = await rotateAround(valueStore, meta.id, 'after', () => service.updateMetadata(ctxA, meta.id, { tags: { moved: 'yes' } }));
        expect('meta' in outcome && outcome.meta).toMatchObject({ version: 2 });
        if (valueStore === ValueStoreKind.ENVELOPE) {
          expect(await envelopeRows(meta.id)).toBe(2); // versions 1 and 2; the lost attempt's row is gone
        } else {
          const [{ name }] = (await dataSource.query(`SELECT vault_secret_name AS name FROM cv_credential_versions WHERE credential_id = '${meta.id}' AND version = 2`)) as Array<{ name: string }>;
          const versions = [];
          for await (const v of vault.listAllSecretVersions(name)) versions.push(v);
          // Three versions were written (store, lost attempt, retry): the lost one is disabled.
          expect(versions).toHaveLength(3);
          expect(versions.filter((v) => !v.enabled)).toHaveLength(1);
        }
        expect((await service.getVersion(ctxA, meta.id, 1)).value).toBeDefined();
        expect((await service.get(ctxA, meta.id)).metadata.version).toBe(2);
      },
    );

    it('compare-and-set: a stale expectedVersion fails with CONFLICT and writes nothing', async () => {
      const v1 = secret();
      const meta = await service.store(ctxA, { integrationId: 'cas', connectionId: 'c', type: CredentialType.API_KEY, value: v1 });
      await service.updateMetadata(ctxA, meta.id, { tags: { a: '1' }, expectedVersion: 1 });
      const setsBefore = setSecretCalls();
      const err = await rejection(service.rotate(ctxA, meta.id, secret(), { expectedVersion: 1 }));
      expect(err).toBeInstanceOf(CredentialConflictError);
      expect(err).toMatchObject({ code: 2003, expectedVersion: 1, actualVersion: 2 });
      expect(setSecretCalls()).toBe(setsBefore);
      expect(await rejection(service.updateMetadata(ctxA, meta.id, { tags: {}, expectedVersion: 1 }))).toBeInstanceOf(CredentialConflictError);
      expect(await rejection(service.delete(ctxA, meta.id, { expectedVersion: 1 }))).toBeInstanceOf(CredentialConflictError);
      const now = await service.get(ctxA, meta.id);
      expect(now.value).toBe(v1);
      expect(now.metadata).toMatchObject({ version: 1, rowVersion: 2, tags: { a: '1' } });
    });

    it('concurrent unconditional rotations all land as distinct versions', async () => {
      const meta = await service.store(ctxA, { integrationId: 'race', connectionId: 'c', type: CredentialType.OAUTH_ACCESS_TOKEN, value: secret() });
      const next = [secret(), secret()];
      await Promise.all(next.map((v) => service.rotate(ctxA, meta.id, v)));
      const versions = await service.listVersions(ctxA, meta.id);
      expect(versions.map((v) => v.version)).toEqual([3, 2, 1]);
      expect(next).toContain((await service.get(ctxA, meta.id)).value);
    });

    it('rolls over to a new generation secret name before the per-name version limit', async () => {
      const parts = { tenantId: ctxA.tenantId, integrationId: 'gen', type: CredentialType.API_KEY, connectionId: 'c' };
      const vs = [secret(), secret(), secret(), secret(), secret()];
      const meta = await service.store(ctxA, { integrationId: 'gen', connectionId: 'c', type: CredentialType.API_KEY, value: vs[0] });
      for (const v of vs.slice(1)) await service.rotate(ctxA, meta.id, v);
      const versionsOf = async (name: string) => {
        const out = [];
        for await (const p of vault.listAllSecretVersions(name)) out.push(p);
        return out;
      };
      expect(await versionsOf(credentialSecretName(parts, 0))).toHaveLength(3); // threshold 3 in this suite
      expect(await versionsOf(credentialSecretName(parts, 1))).toHaveLength(2);
      expect((await service.get(ctxA, meta.id)).value).toBe(vs[4]);
      await service.rollback(ctxA, meta.id, 1); // a version in the old generation stays reachable
      expect((await service.get(ctxA, meta.id)).value).toBe(vs[0]);
    });
  });

  describe('metadata, listing, statistics', () => {
    const ctxS: OperationContext = { tenantId: `stats-${run}`, actor: { id: 'user:s' } };

    it('updates tags, expiry and status; refuses invalid updates', async () => {
      const meta = await service.store(ctxA, { integrationId: 'meta', connectionId: 'c', type: CredentialType.API_KEY, value: secret() });
      const exp = new Date(clock.now().getTime() + 5 * DAY);
      const updated = await service.updateMetadata(ctxA, meta.id, { tags: { team: 'core' }, expiresAt: exp, status: CredentialStatus.NEEDS_REAUTH });
      expect(updated).toMatchObject({ tags: { team: 'core' }, expiresAt: exp, status: CredentialStatus.NEEDS_REAUTH, rowVersion: 2 });
      expect((await service.get(ctxA, meta.id)).metadata.status).toBe(CredentialStatus.NEEDS_REAUTH);
      expect(await rejection(service.updateMetadata(ctxA, meta.id, { status: CredentialStatus.DELETED as never }))).toBeInstanceOf(CredentialValidationError);
      expect(await rejection(service.updateMetadata(ctxA, meta.id, {}))).toBeInstanceOf(CredentialValidationError);
    });

    it('an update that changes nothing writes nothing (same rowVersion, no audit row, no event); one that changes a field names that field only', async () => {
      const ctxN: OperationContext = { tenantId: `noop-${run}`, actor: { id: 'user:n' } };
      const exp = new Date(clock.now().getTime() + 5 * DAY);
      const meta = await service.store(ctxN, { integrationId: 'noop', connectionId: 'c', type: CredentialType.API_KEY, value: secret(), tags: { team: 'core', env: 'prod' }, expiresAt: exp });
      const auditRows = async () => (await audit.query({ tenantId: ctxN.tenantId, action: 'update_metadata' })).items;
      const outboxRows = () => dataSource.getRepository(OutboxEventEntity).countBy({ tenantId: ctxN.tenantId, name: CredentialEvents.METADATA_UPDATED });
      const stored = await service.getMetadata(ctxN, meta.id);
      // The stored values again: tags in another order, the same instant as another Date, with and without a compare-and-set.
      const inputs: UpdateMetadataInput[] = [
        { tags: { env: 'prod', team: 'core' } },
        { expiresAt: new Date(exp.getTime()) },
        { status: CredentialStatus.ACTIVE },
        { tags: { team: 'core', env: 'prod' }, expiresAt: new Date(exp.toISOString()), status: CredentialStatus.ACTIVE, expectedVersion: 1 },
      ];
      for (const input of inputs) {
        const again = await service.updateMetadata(ctxN, meta.id, input);
        expect({ input, again }).toEqual({ input, again: stored });
      }
      expect(await service.getMetadata(ctxN, meta.id)).toEqual(stored);
      expect(await auditRows()).toHaveLength(0);
      expect(await outboxRows()).toBe(0);
      // A stale compare-and-set is still refused, changed or not.
      expect(await rejection(service.updateMetadata(ctxN, meta.id, { tags: { team: 'core', env: 'prod' }, expectedVersion: 2 }))).toBeInstanceOf(CredentialConflictError);
      // Two fields given, one changed: the audit row names that one.
      const changed = await service.updateMetadata(ctxN, meta.id, { tags: { env: 'prod', team: 'core' }, expiresAt: new Date(exp.getTime() + DAY), expectedVersion: 1 });
      expect(changed.rowVersion).toBe(2);
      const rows = await auditRows();
      expect(rows.map((r) => r.details?.changed)).toEqual([['expiresAt']]);
      expect(await outboxRows()).toBe(1);
    });

    it('identical updates at once (no expectedVersion): one writes, the others find nothing to change; one audit row, one event', async () => {
      const ctxN: OperationContext = { tenantId: `noop-race-${run}`, actor: { id: 'user:n' } };
      const meta = await service.store(ctxN, { integrationId: 'noop', connectionId: 'race', type: CredentialType.API_KEY, value: secret(), tags: { team: 'core' } });
      const results = await Promise.all(Array.from({ length: 4 }, () => service.updateMetadata(ctxN, meta.id, { tags: { team: 'edge' } })));
      expect(results.map((r) => [r.rowVersion, r.tags])).toEqual(Array.from({ length: 4 }, () => [2, { team: 'edge' }]));
      expect((await audit.query({ tenantId: ctxN.tenantId, action: 'update_metadata' })).items.map((r) => [r.result, r.details?.changed])).toEqual([['success', ['tags']]]);
      expect(await dataSource.getRepository(OutboxEventEntity).countBy({ tenantId: ctxN.tenantId, name: CredentialEvents.METADATA_UPDATED })).toBe(1);
    });

    it('refuses a tag value holding NUL, another control character or a lone surrogate (store and update) naming the tag, writing nothing; other Unicode is kept', async () => {
      const meta = await service.store(ctxA, { integrationId: 'tag-text', connectionId: 'c', type: CredentialType.API_KEY, value: secret(), tags: { team: 'core' } });
      const setsBefore = setSecretCalls();
      const rowsBefore = await countRows('cv_credentials');
      for (const bad of ['a\u0000b', '\u0000', 'line\nbreak', 'tab\there', 'esc\u001b[0m', 'del\u007f', 'lone\ud800', '\udc00x']) {
        const tags = { team: 'core', note: bad };
        for (const write of [
          () => service.store(ctxA, { integrationId: 'tag-text', connectionId: 'other', type: CredentialType.API_KEY, value: secret(), tags }),
          () => service.updateMetadata(ctxA, meta.id, { tags }),
        ]) {
          const error = await rejection(write());
          expect({ bad, error, field: (error as CredentialValidationError).field, message: (error as Error).message }).toEqual({
            bad,
            error: expect.any(CredentialValidationError),
            field: 'tags',
            message: expect.stringContaining('tag #2'),
          });
        }
      }
      expect(setSecretCalls()).toBe(setsBefore);
      expect(await countRows('cv_credentials')).toBe(rowsBefore);
      expect((await service.get(ctxA, meta.id)).metadata).toMatchObject({ tags: { team: 'core' }, rowVersion: meta.rowVersion });
      const kept = { team: 'zoë – ünïcode \u{1F600}', space: 'two words' };
      expect((await service.updateMetadata(ctxA, meta.id, { tags: kept })).tags).toEqual(kept);
      expect((await service.get(ctxA, meta.id)).metadata.tags).toEqual(kept);
    });

    it('lists with filters and cursor paging; listExpiring and statistics come from SQL', async () => {
      const now = clock.now().getTime();
      const mk = (integrationId: string, connectionId: string, type: CredentialType, expiresAt?: Date) =>
        service.store(ctxS, { integrationId, connectionId, type, value: secret(), expiresAt });
      const a = await mk('github', 'c1', CredentialType.API_KEY, new Date(now + 3 * DAY));
      clock.advance(1);
      const b = await mk('github', 'c2', CredentialType.API_KEY, new Date(now + 20 * DAY));
      clock.advance(1);
      const c = await mk('slack', 'c1', CredentialType.BASIC_AUTH_PASSWORD);
      clock.advance(1);
      const d = await mk('slack', 'c2', CredentialType.API_KEY, new Date(now - DAY)); // already expired
      clock.advance(1);

      const all: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await service.list(ctxS, { limit: 3, cursor });
        all.push(...page.items.map((i) => i.id));
        cursor = page.nextCursor;
      } while (cursor);
      expect(all).toEqual([a.id, b.id, c.id, d.id]);

      expect((await service.list(ctxS, { integrationId: 'github' })).items.map((i) => i.id)).toEqual([a.id, b.id]);
      expect((await service.list(ctxS, { type: CredentialType.BASIC_AUTH_PASSWORD })).items.map((i) => i.id)).toEqual([c.id]);
      expect((await service.list(ctxS, { status: CredentialStatus.EXPIRED })).items.map((i) => i.id)).toEqual([d.id]);
      expect((await service.list(ctxS, { expiringBefore: new Date(now + 10 * DAY) })).items.map((i) => i.id)).toEqual([a.id, d.id]);
      expect(await rejection(service.list(ctxS, { cursor: 'garbage' }))).toBeInstanceOf(CredentialValidationError);
      // Well-formed JSON with a time no cursor holds (a fraction, beyond BIGINT): refused, not a database error.
      for (const createdAt of [1.5, 1e30, -1]) {
        const forged = Buffer.from(JSON.stringify([createdAt, '00000000-0000-4000-8000-000000000000'])).toString('base64url');
        expect(await rejection(service.list(ctxS, { cursor: forged }))).toBeInstanceOf(CredentialValidationError);
      }

      expect((await service.listExpiring(ctxS, 7)).map((m) => m.id)).toEqual([d.id, a.id]);
      expect((await service.listExpiring(ctxS, 30)).map((m) => m.id)).toEqual([d.id, a.id, b.id]);

      const getsBefore = getSecretCalls();
      const stats = await service.statistics(ctxS);
      expect(stats).toEqual({
        total: 4,
        byType: { api_key: 3, basic_auth_password: 1 },
        byIntegration: { github: 2, slack: 2 },
        byStatus: { active: 3, expired: 1 },
        expiringWithin7Days: 1,
        expiringWithin30Days: 2,
        expired: 1,
      });
      expect(getSecretCalls()).toBe(getsBefore);
      expect(emu.stats().byOperation.listSecrets ?? 0).toBe(0);
    });

    it('listExpiringBounded says when the expiring list was cut at its limit (one row past it read, no count)', async () => {
      const ctxX: OperationContext = { tenantId: `bounded-${run}`, actor: { id: 'user:x' } };
      const now = clock.now().getTime();
      const mk = (connectionId: string, inDays: number) => service.store(ctxX, { integrationId: 'acme', connectionId, type: CredentialType.API_KEY, value: secret(), expiresAt: new Date(now + inDays * DAY) });
      const ids = (items: { id: string }[]) => items.map((i) => i.id);
      const c3 = await mk('c3', 3.5);
      const c1 = await mk('c1', 1);
      const c2 = await mk('c2', 2.5);
      // Exactly the limit: all of them, not truncated.
      expect(await service.listExpiringBounded(ctxX, 30, 3)).toEqual({ items: [expect.objectContaining({ id: c1.id }), expect.objectContaining({ id: c2.id }), expect.objectContaining({ id: c3.id })], truncated: false });
      // One past it: the soonest `limit`, truncated; the old method still answers the array alone.
      const c0 = await mk('c0', 0.5);
      const cut = await service.listExpiringBounded(ctxX, 30, 3);
      expect({ items: ids(cut.items), truncated: cut.truncated }).toEqual({ items: [c0.id, c1.id, c2.id], truncated: true });
      expect(ids(await service.listExpiring(ctxX, 30, 3))).toEqual([c0.id, c1.id, c2.id]);
      expect(await service.listExpiringBounded(ctxX, 30)).toMatchObject({ truncated: false });
      expect((await service.listExpiringBounded(ctxX, 30)).items).toHaveLength(4);
      // Rows outside the window do not count as more.
      expect(await service.listExpiringBounded(ctxX, 2, 1)).toEqual({ items: [expect.objectContaining({ id: c0.id })], truncated: true });
      expect(await service.listExpiringBounded(ctxX, 2, 2)).toEqual({ items: [expect.objectContaining({ id: c0.id }), expect.objectContaining({ id: c1.id })], truncated: false });
      expect(await rejection(service.listExpiringBounded(ctxX, 30, 0))).toBeInstanceOf(CredentialValidationError);
    });

    it("leaves the libs' internal credentials (rotation-pending.*, whsec-pending.*) out of lists, expiring, statistics and connections unless asked; full pages", async () => {
      const ctxI: OperationContext = { tenantId: `internal-${run}`, actor: { id: 'user:i' } };
      const now = clock.now().getTime();
      // Under a reserved prefix as the libs write them (`internal`); the api_key one stands for a row from before the guard.
      const mk = async (connectionId: string, type = CredentialType.API_KEY) => {
        clock.advance(1);
        return service.store(ctxI, { integrationId: 'acme', connectionId, type, value: secret(), expiresAt: new Date(now + 3 * DAY) }, { internal: connectionId.includes('-pending.') });
      };
      // The tenant's own rows with internal rows between them, so that a filter after the query would shorten pages.
      const a = await mk('c1');
      const pending = await mk(`rotation-pending.${a.id}`, CredentialType.CUSTOM_SECRET);
      const staged = await mk('whsec-pending.r1', CredentialType.CUSTOM_SECRET);
      const b = await mk('c2', CredentialType.CUSTOM_SECRET);
      const staged2 = await mk('whsec-pending.r2', CredentialType.CUSTOM_SECRET);
      // Only a custom_secret under a reserved prefix is internal.
      const c = await mk('whsec-pending.r3');
      const ids = (items: { id: string }[]) => items.map((i) => i.id);

      const paged = async (query: { includeInternal?: boolean }) => {
        const pages: string[][] = [];
        let cursor: string | undefined;
        do {
          const page = await service.list(ctxI, { ...query, limit: 2, cursor });
          pages.push(ids(page.items));
          cursor = page.nextCursor;
        } while (cursor);
        return pages;
      };
      expect(await paged({})).toEqual([[a.id, b.id], [c.id]]);
      expect((await paged({ includeInternal: true })).flat()).toEqual([a.id, pending.id, staged.id, b.id, staged2.id, c.id]);
      expect(ids((await service.list(ctxI, { type: CredentialType.CUSTOM_SECRET })).items)).toEqual([b.id]);
      expect(ids((await service.list(ctxI, { connectionId: 'whsec-pending.r1', includeInternal: true })).items)).toEqual([staged.id]);
      // Naming an internal connection asks for it; an explicit includeInternal: false still leaves it out.
      expect(ids((await service.list(ctxI, { connectionId: 'whsec-pending.r1' })).items)).toEqual([staged.id]);
      expect(ids((await service.list(ctxI, { connectionId: `rotation-pending.${a.id}`, type: CredentialType.CUSTOM_SECRET })).items)).toEqual([pending.id]);
      expect(ids((await service.list(ctxI, { connectionId: 'whsec-pending.r1', includeInternal: false })).items)).toEqual([]);

      expect(ids(await service.listExpiring(ctxI, 30)).sort()).toEqual([a.id, b.id, c.id].sort()); // one expiry: by id
      expect(ids(await service.listExpiring(ctxI, 30, 500, { includeInternal: true })).sort()).toEqual([a.id, pending.id, staged.id, b.id, staged2.id, c.id].sort());

      expect(await service.statistics(ctxI)).toMatchObject({ total: 3, byType: { api_key: 2, custom_secret: 1 }, expiringWithin7Days: 3 });
      expect(await service.statistics(ctxI, { includeInternal: true })).toMatchObject({ total: 6, byType: { api_key: 2, custom_secret: 4 }, expiringWithin7Days: 6 });

      const connections = async (includeInternal?: boolean) => (await service.listConnections(ctxI, { integrations: [], includeInternal })).map((v) => v.connectionId);
      expect(await connections()).toEqual(['c1', 'c2', 'whsec-pending.r3']);
      expect(await connections(true)).toEqual(['c1', 'c2', `rotation-pending.${a.id}`, 'whsec-pending.r1', 'whsec-pending.r2', 'whsec-pending.r3']);
      // Read by id as any other (their ids are listed by the rotation lib).
      expect((await service.getMetadata(ctxI, staged.id)).connectionId).toBe('whsec-pending.r1');
      expect(await rejection(service.list(ctxI, { includeInternal: 'yes' as never }))).toBeInstanceOf(CredentialValidationError);
    });

    it('scans expiring credentials across tenants for system jobs, soonest first, keyset-paged', async () => {
      const far = new Date(clock.now().getTime() + 10_000 * DAY);
      const t1: OperationContext = { tenantId: `scan-a-${run}`, actor: { id: 'user:a' } };
      const t2: OperationContext = { tenantId: `scan-b-${run}`, actor: { id: 'user:b' } };
      const base = clock.now().getTime() + 5_000 * DAY; // later than every other test's expiry
      const x = await service.store(t1, { integrationId: 'scan', connectionId: 'x', type: CredentialType.API_KEY, value: secret(), expiresAt: new Date(base + 2) });
      const y = await service.store(t2, { integrationId: 'scan', connectionId: 'y', type: CredentialType.API_KEY, value: secret(), expiresAt: new Date(base + 1) });
      const z = await service.store(t2, { integrationId: 'scan', connectionId: 'z', type: CredentialType.CUSTOM_SECRET, value: secret(), expiresAt: new Date(base + 3) });
      await service.store(t1, { integrationId: 'scan', connectionId: 'late', type: CredentialType.API_KEY, value: secret(), expiresAt: new Date(far.getTime() + DAY) });
      const revoked = await service.store(t1, { integrationId: 'scan', connectionId: 'r', type: CredentialType.API_KEY, value: secret(), expiresAt: new Date(base) });
      await service.updateMetadata(t1, revoked.id, { status: CredentialStatus.REVOKED });

      const mine = (refs: { id: string }[]) => refs.filter((r) => [x.id, y.id, z.id, revoked.id].includes(r.id)).map((r) => r.id);
      // The system-only scanner, off the tenant-facing service.
      const scanner = moduleRef.get(CredentialExpiryScanner);
      expect('scanExpiringAcrossTenants' in service).toBe(false);
      const all = await scanner.scanExpiringAcrossTenants({ before: far, limit: 10_000 });
      expect(mine(all)).toEqual([y.id, x.id, z.id]); // both tenants, soonest first, revoked excluded
      expect(all.find((r) => r.id === y.id)).toEqual({ id: y.id, tenantId: t2.tenantId, integrationId: 'scan', connectionId: 'y', type: CredentialType.API_KEY, expiresAt: new Date(base + 1) });
      expect(mine(await scanner.scanExpiringAcrossTenants({ before: far, type: CredentialType.CUSTOM_SECRET, limit: 10_000 }))).toEqual([z.id]);
      const first = await scanner.scanExpiringAcrossTenants({ before: far, limit: 1, after: { expiresAt: new Date(base + 1), id: y.id } });
      expect(first.map((r) => r.id)).toEqual([x.id]);
      expect(await rejection(scanner.scanExpiringAcrossTenants({ before: far, limit: 0 }))).toBeInstanceOf(CredentialValidationError);
    });

    it('shows the tenant connection view with statuses and masks, from metadata only', async () => {
      const ctxC: OperationContext = { tenantId: `conn-${run}`, actor: { id: 'user:c' } };
      const now = clock.now().getTime();
      const access = secret('at');
      const refresh = secret('rt');
      await service.store(ctxC, { integrationId: 'github', connectionId: 'me', type: CredentialType.OAUTH_ACCESS_TOKEN, value: access, expiresAt: new Date(now - 1000) });
      await service.store(ctxC, { integrationId: 'github', connectionId: 'me', type: CredentialType.OAUTH_REFRESH_TOKEN, value: refresh });
      const slack = await service.store(ctxC, { integrationId: 'slack', connectionId: 'w1', type: CredentialType.API_KEY, value: secret() });
      await service.updateMetadata(ctxC, slack.id, { status: CredentialStatus.NEEDS_REAUTH });
      const jira = await service.store(ctxC, { integrationId: 'jira', connectionId: 'j', type: CredentialType.API_KEY, value: secret() });
      await service.updateMetadata(ctxC, jira.id, { status: CredentialStatus.REVOKED });
      await service.store(ctxC, { integrationId: 'zoom', connectionId: 'z', type: CredentialType.API_KEY, value: secret(), expiresAt: new Date(now - 1) });
      await service.store(ctxC, { integrationId: 'short', connectionId: 's', type: CredentialType.BASIC_AUTH_PASSWORD, value: 'pw-1234' });
      values.add('pw-1234');

      const getsBefore = getSecretCalls();
      const view = await service.listConnections(ctxC);
      expect(getSecretCalls()).toBe(getsBefore);
      const byIntegration = Object.fromEntries(view.map((v) => [v.integrationId, v]));
      expect(byIntegration.github.status).toBe(ConnectionStatus.CONNECTED);
      expect(byIntegration.github.credentials.map((c) => c.maskedValue).sort()).toEqual([`***${access.slice(-3)}`, `***${refresh.slice(-3)}`].sort());
      expect(byIntegration.slack.status).toBe(ConnectionStatus.NEEDS_REAUTH);
      expect(byIntegration.jira.status).toBe(ConnectionStatus.REVOKED);
      expect(byIntegration.zoom.status).toBe(ConnectionStatus.EXPIRED);
      expect(byIntegration.short.credentials[0].maskedValue).toBe('***');
      expect(byIntegration.notion).toMatchObject({ status: ConnectionStatus.NOT_CONFIGURED, connectionId: null, credentials: [] });
    });
  });

  describe('delete', () => {
    it('deletes one; a soft-deleted secret name does not block storing the same credential again', async () => {
      const v1 = secret();
      const meta = await service.store(ctxA, { integrationId: 'again', connectionId: 'c', type: CredentialType.API_KEY, value: v1 });
      await service.get(ctxA, meta.id); // cached
      await service.delete(ctxA, meta.id);
      expect(await rejection(service.get(ctxA, meta.id))).toBeInstanceOf(CredentialNotFoundError);
      expect(await rejection(service.getMetadata(ctxA, meta.id))).toBeInstanceOf(CredentialNotFoundError);
      const parts = { tenantId: ctxA.tenantId, integrationId: 'again', type: CredentialType.API_KEY, connectionId: 'c' };
      const deleted = await vault.getDeletedSecret(credentialSecretName(parts, 0));
      expect(deleted.recoveryId).toBeDefined();

      const v2 = secret();
      const again = await service.store(ctxA, { integrationId: 'again', connectionId: 'c', type: CredentialType.API_KEY, value: v2 });
      expect(again.id).not.toBe(meta.id);
      expect((await service.get(ctxA, again.id)).value).toBe(v2);
      expect((await vault.getSecret(credentialSecretName(parts, 1))).value).toBe(v2);
    });

    it('recovers from a stale generation hint by skipping soft-deleted names (409 DELETED_BUT_RECOVERABLE)', async () => {
      const parts = { tenantId: ctxA.tenantId, integrationId: 'skip', type: CredentialType.API_KEY, connectionId: 'c' };
      // A secret of that name exists and is soft-deleted, but no metadata remembers it (e.g. a wiped DB).
      await vault.setSecret(credentialSecretName(parts, 0), 'orphan-value-xyz');
      values.add('orphan-value-xyz');
      await vault.deleteSecret(credentialSecretName(parts, 0));
      const v = secret();
      const meta = await service.store(ctxA, { integrationId: 'skip', connectionId: 'c', type: CredentialType.API_KEY, value: v });
      expect((await service.get(ctxA, meta.id)).value).toBe(v);
      expect((await vault.getSecret(credentialSecretName(parts, 1))).value).toBe(v);
    });

    it('deletes by connection and in batches, reporting unknown ids', async () => {
      const ctxD: OperationContext = { tenantId: `del-${run}`, actor: { id: 'user:d' } };
      const at = await service.store(ctxD, { integrationId: 'hub', connectionId: 'x', type: CredentialType.OAUTH_ACCESS_TOKEN, value: secret() });
      const rt = await service.store(ctxD, { integrationId: 'hub', connectionId: 'x', type: CredentialType.OAUTH_REFRESH_TOKEN, value: secret() });
      const other = await service.store(ctxD, { integrationId: 'hub', connectionId: 'y', type: CredentialType.API_KEY, value: secret() });
      const byConn = await service.deleteByConnection(ctxD, 'hub', 'x');
      expect(byConn.deleted.sort()).toEqual([at.id, rt.id].sort());
      // The envelope ciphertext went with the metadata (crypto-shred in the same transaction).
      expect(await dataSource.query(`SELECT id FROM cv_envelope_values WHERE credential_id = '${at.id}'`)).toHaveLength(0);
      const batch = await service.deleteMany(ctxD, [other.id, at.id, '00000000-0000-4000-8000-000000000000']);
      expect(batch).toEqual({ deleted: [other.id], notFound: [at.id, '00000000-0000-4000-8000-000000000000'] });
      expect((await service.list(ctxD)).items).toHaveLength(0);
    });
  });

  describe('cache and value-store traffic', () => {
    it('200 concurrent readers of one cold credential make exactly 1 getSecret at the vault', async () => {
      const v = secret();
      const meta = await service.store(ctxA, { integrationId: 'burst', connectionId: 'c', type: CredentialType.API_KEY, value: v });
      cache.clear();
      emu.resetStats();
      const reads = await Promise.all(Array.from({ length: 200 }, () => service.get(ctxA, meta.id)));
      expect(reads.every((r) => r.value === v)).toBe(true);
      expect(emu.stats().byOperation.getSecret).toBe(1);
      // Warm reads do not reach the vault either.
      await Promise.all(Array.from({ length: 50 }, () => service.get(ctxA, meta.id)));
      expect(emu.stats().byOperation.getSecret).toBe(1);
    });

    it('a cached read unpacked again, after 1,024 other reads, answers and is audited as the first read', async () => {
      const v = `${secret()} ключ 🔑`;
      const expiresAt = new Date(clock.now().getTime() + 90 * DAY);
      const meta = await service.store(ctxA, { integrationId: 'packed', connectionId: 'first', type: CredentialType.API_KEY, value: v, tags: { team: 'a' }, expiresAt });
      const first = await service.get(ctxA, meta.id);
      // The reader keeps its last 1,024 reads unpacked; 1,024 others push this one out (in the cache, packed).
      for (const otherId of await storeOthers('packed', 1024)) await service.get(ctxA, otherId);
      emu.resetStats();
      const hitsBefore = cache.stats().hits;
      const again = await service.get(ctxA, meta.id);
      expect(cache.stats().hits).toBe(hitsBefore + 1);
      expect(getSecretCalls()).toBe(0);
      expect(again).toEqual(first);
      expect(again.value).toBe(v);
      expect(again.metadata.expiresAt).toEqual(expiresAt);
      await moduleRef.get(ReadAuditCoalescer).flush();
      await audit.flush();
      const reads = (await audit.query({ tenantId: ctxA.tenantId, resource: meta.id, action: 'read', order: 'asc' })).items;
      // The first read is its row; the second is folded into the next one (a repeat within the window) or its own.
      expect(reads).toHaveLength(2);
      const details = { integrationId: 'packed', connectionId: 'first', type: 'api_key', valueStore: 'vault', version: 1 };
      expect(reads[0].details).toEqual(details);
      expect(reads[1].details).toMatchObject(details);
      // Revoking drops it from the cache and from the reader's unpacked reads: its value does not stay in memory.
      const unpacked = (moduleRef.get(CredentialReader, { strict: false }) as unknown as { unpacked: UnpackedReads<unknown> }).unpacked;
      const held = unpacked.size;
      await service.revoke(ctxA, meta.id);
      expect(unpacked.size).toBe(held - 1);
      expect(await rejection(service.get(ctxA, meta.id))).toBeInstanceOf(CredentialRevokedError);
    });

    it('envelope reads fetch the tenant data key once, however many credentials', async () => {
      const ids = [];
      for (let i = 0; i < 5; i++) {
        ids.push((await service.store(ctxA, { integrationId: 'env-many', connectionId: `c${i}`, type: CredentialType.OAUTH_ACCESS_TOKEN, value: secret() })).id);
      }
      cache.clear();
      moduleRef.get(DataKeyService).clear();
      emu.resetStats();
      await Promise.all(ids.map((id) => service.get(ctxA, id)));
      expect(emu.stats().byOperation.getSecret).toBe(1);
    });

    it('cached metadata reads come from memory, and the next read after any change sees it (update, rotate, revoke, delete)', async () => {
      const meta = await service.store(ctxA, { integrationId: 'meta-cache', connectionId: 'c', type: CredentialType.API_KEY, value: secret(), tags: { team: 'a' } });
      const cached = () => service.getMetadata(ctxA, meta.id, { cached: true });
      expect((await cached()).tags).toEqual({ team: 'a' });
      // A change behind the lib's back (no eviction) shows which reads come from memory.
      const sql = kind === 'postgres' ? `UPDATE cv_credentials SET tags = $1 WHERE id = $2` : `UPDATE cv_credentials SET tags = ? WHERE id = ?`;
      await TransactionGate.for(dataSource).exclusive(() => dataSource.query(sql, [JSON.stringify({ team: 'behind' }), meta.id]));
      expect((await cached()).tags).toEqual({ team: 'a' });
      expect((await service.getMetadata(ctxA, meta.id)).tags).toEqual({ team: 'behind' });
      // A caller mutating what it got does not change what the next read gets.
      const got = await cached();
      got.tags.team = 'mutated';
      got.createdAt.setTime(0);
      expect(await cached()).toMatchObject({ tags: { team: 'a' }, createdAt: meta.createdAt });

      await service.updateMetadata(ctxA, meta.id, { tags: { team: 'b' } });
      expect(await cached()).toMatchObject({ tags: { team: 'b' }, rowVersion: 2 });
      await service.rotate(ctxA, meta.id, secret());
      expect(await cached()).toMatchObject({ version: 2, rowVersion: 3 });
      await service.revoke(ctxA, meta.id);
      expect((await cached()).status).toBe(CredentialStatus.REVOKED);
      await service.unrevoke(ctxA, meta.id);
      expect((await cached()).status).toBe(CredentialStatus.ACTIVE);
      // Another tenant is never served this tenant's entry.
      expect(await rejection(service.getMetadata(ctxB, meta.id, { cached: true }))).toBeInstanceOf(CredentialNotFoundError);
      await service.delete(ctxA, meta.id);
      expect(await rejection(cached())).toBeInstanceOf(CredentialNotFoundError);
    });

    it('a cached metadata read unpacked again, after 1,024 other cached rows, is still the cached row', async () => {
      const expiresAt = new Date(clock.now().getTime() + 30 * DAY);
      const meta = await service.store(ctxA, { integrationId: 'meta-packed', connectionId: 'first', type: CredentialType.API_KEY, value: secret(), tags: { team: 'a' }, expiresAt });
      const cached = () => service.getMetadata(ctxA, meta.id, { cached: true });
      const first = await cached();
      for (const otherId of await storeOthers('meta-packed', 1024)) await service.getMetadata(ctxA, otherId, { cached: true });
      // A change behind the lib's back (no eviction): the next cached read is the row in the cache, unpacked.
      const sql = kind === 'postgres' ? `UPDATE cv_credentials SET tags = $1 WHERE id = $2` : `UPDATE cv_credentials SET tags = ? WHERE id = ?`;
      await TransactionGate.for(dataSource).exclusive(() => dataSource.query(sql, [JSON.stringify({ team: 'behind' }), meta.id]));
      const again = await cached();
      expect(again).toEqual(first);
      expect(again.expiresAt).toEqual(expiresAt);
      expect(again.tags).toEqual({ team: 'a' });
      await service.updateMetadata(ctxA, meta.id, { tags: { team: 'b' } });
      expect((await cached()).tags).toEqual({ team: 'b' });
    });

    it('inside a transaction a cached metadata read sees the transaction’s own writes and fills nothing', async () => {
      const meta = await service.store(ctxA, { integrationId: 'meta-cache-tx', connectionId: 'c', type: CredentialType.API_KEY, value: secret(), tags: { n: '1' } });
      const cached = () => service.getMetadata(ctxA, meta.id, { cached: true });
      expect((await cached()).tags).toEqual({ n: '1' });
      const runner = moduleRef.get(TransactionRunner);
      await expect(
        runner.run(async () => {
          await service.updateMetadata(ctxA, meta.id, { tags: { n: '2' } });
          expect((await cached()).tags).toEqual({ n: '2' });
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      // Rolled back: the row read inside was not kept.
      expect((await cached()).tags).toEqual({ n: '1' });
      expect((await service.getMetadata(ctxA, meta.id)).tags).toEqual({ n: '1' });
    });

    it('serves a stale value within maxStaleMs while the vault is unavailable, never beyond', async () => {
      const v = secret();
      const meta = await service.store(ctxA, { integrationId: 'stale', connectionId: 'c', type: CredentialType.API_KEY, value: v });
      await service.get(ctxA, meta.id);
      clock.advance(TTL + 1000);
      emu.injectFault({ kind: 'status', status: 503, operations: ['getSecret'], count: 2 });
      expect((await service.get(ctxA, meta.id)).value).toBe(v);
      expect(cache.stats().staleServed).toBeGreaterThanOrEqual(1);
      clock.advance(60_000); // now 61 s past expiry > maxStaleMs 30 s
      const err = await rejection(service.get(ctxA, meta.id));
      expect(err).toMatchObject({ code: 1006 }); // SERVICE_UNAVAILABLE from the key-vault lib
      emu.clearFaults();
      expect((await service.get(ctxA, meta.id)).value).toBe(v);
    });
  });

  describe('envelope data keys', () => {
    it('rotating the data key re-encrypts lazily on read and all at once on demand', async () => {
      const ctxE: OperationContext = { tenantId: `env-${run}`, actor: { id: 'user:e' } };
      const v1 = secret();
      const v2 = secret();
      const a = await service.store(ctxE, { integrationId: 'e', connectionId: 'a', type: CredentialType.OAUTH_ACCESS_TOKEN, value: v1 });
      const b = await service.store(ctxE, { integrationId: 'e', connectionId: 'b', type: CredentialType.OAUTH_ACCESS_TOKEN, value: v2 });
      const keyOf = async (id: string) => (await dataSource.query(`SELECT data_key_version AS v FROM cv_envelope_values WHERE credential_id = '${id}'`))[0].v;
      const oldKey = await keyOf(a.id);
      const newKey = await moduleRef.get(DataKeyService).rotate(ctxE.tenantId);
      expect(newKey.version).not.toBe(oldKey);

      cache.clear();
      expect((await service.get(ctxE, a.id)).value).toBe(v1);
      expect(await keyOf(a.id)).toBe(newKey.version);
      expect(await keyOf(b.id)).toBe(oldKey);

      expect(await moduleRef.get(EnvelopeValueStore).reencryptAll(ctxE.tenantId)).toEqual({ reencrypted: 1, alreadyCurrent: 1, failed: [], settled: false, settlesAt: expect.any(String) });
      expect(await keyOf(b.id)).toBe(newKey.version);
      cache.clear();
      moduleRef.get(DataKeyService).clear();
      expect((await service.get(ctxE, b.id)).value).toBe(v2);
    });

    it('a ciphertext moved onto another credential fails authentication (AAD binds it to its credential)', async () => {
      const ctxE: OperationContext = { tenantId: `aad-${run}`, actor: { id: 'user:e' } };
      const a = await service.store(ctxE, { integrationId: 'e', connectionId: 'a', type: CredentialType.OAUTH_ACCESS_TOKEN, value: secret() });
      const b = await service.store(ctxE, { integrationId: 'e', connectionId: 'b', type: CredentialType.OAUTH_ACCESS_TOKEN, value: secret() });
      const [src] = await dataSource.query(`SELECT iv, auth_tag, ciphertext FROM cv_envelope_values WHERE credential_id = '${a.id}'`);
      await TransactionGate.for(dataSource).exclusive(() =>
        dataSource.query(
          kind === 'postgres'
            ? `UPDATE cv_envelope_values SET iv = $1, auth_tag = $2, ciphertext = $3 WHERE credential_id = $4`
            : `UPDATE cv_envelope_values SET iv = ?, auth_tag = ?, ciphertext = ? WHERE credential_id = ?`,
          [src.iv, src.auth_tag, src.ciphertext, b.id],
        ),
      );
      cache.clear();
      expect(await rejection(service.get(ctxE, b.id))).toBeInstanceOf(CredentialIntegrityError);
    });
  });

  describe('tenant isolation', () => {
    it("another tenant's credential is indistinguishable from a missing one", async () => {
      const v = secret();
      const meta = await service.store(ctxA, { integrationId: 'iso', connectionId: 'c', type: CredentialType.API_KEY, value: v });
      const missing = '00000000-0000-4000-8000-00000000abcd';
      for (const id of [meta.id, missing]) {
        for (const call of [
          () => service.get(ctxB, id),
          () => service.getMetadata(ctxB, id),
          () => service.getVersion(ctxB, id, 1),
          () => service.listVersions(ctxB, id),
          () => service.rotate(ctxB, id, secret()),
          () => service.rollback(ctxB, id, 1),
          () => service.updateMetadata(ctxB, id, { tags: {} }),
          () => service.delete(ctxB, id),
        ]) {
          const err = await rejection(call());
          expect(err).toBeInstanceOf(CredentialNotFoundError);
          expect(err.message).toBe(`Credential ${id} not found`);
        }
      }
      expect(await service.deleteMany(ctxB, [meta.id])).toEqual({ deleted: [], notFound: [meta.id] });
      expect((await service.list(ctxB)).items).toHaveLength(0);
      expect((await service.statistics(ctxB)).total).toBe(0);
      expect(await service.listConnections(ctxB, { integrations: [] })).toEqual([]);
      // Same (integration, connection, type) in tenant B is a different credential.
      const mine = await service.store(ctxB, { integrationId: 'iso', connectionId: 'c', type: CredentialType.API_KEY, value: secret() });
      expect(mine.id).not.toBe(meta.id);
      expect((await service.get(ctxA, meta.id)).value).toBe(v);
    });
  });

  describe('crash safety', () => {
    beforeAll(outboxCaughtUp, 120_000);

    /** Makes every audit write fail for real (the table is gone) while `work` runs. */
    async function withAuditBroken(work: () => Promise<void>): Promise<void> {
      await moduleRef.get(ReadAuditCoalescer).flush();
      await audit.flush();
      const gate = TransactionGate.for(dataSource);
      await gate.exclusive(() => dataSource.query(`ALTER TABLE ${AUDIT_TABLE} RENAME TO ${AUDIT_TABLE}_off`));
      try {
        await work();
      } finally {
        await gate.exclusive(() => dataSource.query(`ALTER TABLE ${AUDIT_TABLE}_off RENAME TO ${AUDIT_TABLE}`));
        // A read batch that happened to fall in the window failed and keeps refusing reads (fail-closed) until
        // its rows are written: write them now, as the writer's retry would within a second.
        await audit.flush();
        expect(audit.healthy).toBe(true);
      }
    }

    it.each([
      ['vault', CredentialType.API_KEY],
      ['envelope', CredentialType.OAUTH_ACCESS_TOKEN],
    ])('a failure between the value write and the metadata commit leaves the previous value current (%s)', async (_label, type) => {
      const [v1, v2, v3, v4] = [secret(), secret(), secret(), secret()];
      const meta = await service.store(ctxA, { integrationId: `crash-${type}`, connectionId: 'c', type, value: v1 });
      await service.rotate(ctxA, meta.id, v2);
      await service.get(ctxA, meta.id); // cached
      const setsBefore = setSecretCalls();
      const envelopeRowsBefore = await countRows('cv_envelope_values');
      await withAuditBroken(async () => {
        expect(await rejection(service.rotate(ctxA, meta.id, v3))).toBeDefined();
        expect(await rejection(service.rollback(ctxA, meta.id, 1))).toBeDefined();
      });
      // The new value WAS written first (vault version or envelope row), never became current, and the
      // failed write discarded it: the envelope row is deleted, the vault version disabled.
      if (type === CredentialType.API_KEY) {
        expect(setSecretCalls()).toBe(setsBefore + 1);
        const [{ name }] = (await dataSource.query(`SELECT vault_secret_name AS name FROM cv_credential_versions WHERE credential_id = '${meta.id}' AND version = 2`)) as Array<{ name: string }>;
        const versions = [];
        for await (const v of vault.listAllSecretVersions(name)) versions.push(v);
        expect(versions.map((v) => v.enabled).sort()).toEqual([false, true, true]);
      } else {
        expect(await countRows('cv_envelope_values')).toBe(envelopeRowsBefore);
      }
      for (const fresh of [false, true]) {
        if (fresh) cache.clear();
        const read = await service.get(ctxA, meta.id);
        expect(read.value).toBe(v2);
        expect(read.metadata).toMatchObject({ version: 2, rowVersion: 2 });
      }
      expect((await service.listVersions(ctxA, meta.id)).map((v) => v.version)).toEqual([2, 1]);
      // And the next write works normally.
      await service.rotate(ctxA, meta.id, v4, { expectedVersion: 2 });
      expect((await service.get(ctxA, meta.id)).value).toBe(v4);
    });

    it('the outbox row commits with its change: a failing audit insert leaves no row, no event, the previous value current', async () => {
      const v1 = secret();
      const meta = await service.store(ctxA, { integrationId: 'crash-outbox', connectionId: 'c', type: CredentialType.API_KEY, value: v1 });
      const ofMeta = () => events.filter((e) => e.credentialId === meta.id).map((e) => e.name);
      const outboxRows = async () => Number((await dataSource.query(`SELECT COUNT(*) AS n FROM cv_outbox WHERE payload LIKE '%${meta.id}%'`))[0].n);
      await eventually(() => expect(ofMeta()).toEqual([CredentialEvents.STORED]));
      expect(await outboxRows()).toBe(1);
      await withAuditBroken(async () => {
        expect(await rejection(service.rotate(ctxA, meta.id, secret()))).toBeDefined();
        expect(await rejection(service.updateMetadata(ctxA, meta.id, { tags: { a: 'b' } }))).toBeDefined();
        expect(await rejection(service.delete(ctxA, meta.id))).toBeDefined();
      });
      await moduleRef.get(OutboxDispatcher).drain();
      expect(await outboxRows()).toBe(1);
      expect(ofMeta()).toEqual([CredentialEvents.STORED]);
      const read = await service.get(ctxA, meta.id);
      expect(read.value).toBe(v1);
      expect(read.metadata).toMatchObject({ version: 1, rowVersion: 1, tags: {} });
    });

    it('a failed store leaves nothing behind that can be served', async () => {
      const v = secret();
      await withAuditBroken(async () => {
        expect(await rejection(service.store(ctxA, { integrationId: 'crash-store', connectionId: 'c', type: CredentialType.API_KEY, value: v }))).toBeDefined();
      });
      expect((await service.list(ctxA, { integrationId: 'crash-store' })).items).toHaveLength(0);
      const v2 = secret();
      const meta = await service.store(ctxA, { integrationId: 'crash-store', connectionId: 'c', type: CredentialType.API_KEY, value: v2 });
      expect((await service.get(ctxA, meta.id)).value).toBe(v2);
    });
  });

  describe('audit, events and leaks', () => {
    beforeAll(outboxCaughtUp, 120_000);

    it('audits writes in the same transaction; reads through the buffer, repeats of a read folded with a count', async () => {
      const meta = await service.store(ctxA, { integrationId: 'audited', connectionId: 'c', type: CredentialType.API_KEY, value: secret() });
      for (let i = 0; i < 3; i++) await service.get(ctxA, meta.id);
      await service.get(ctxB, meta.id).catch(() => undefined);
      await moduleRef.get(ReadAuditCoalescer).flush();
      await audit.flush();
      const mine = await audit.query({ tenantId: ctxA.tenantId, resource: meta.id, order: 'asc' });
      expect(mine.items.map((e) => [e.action, e.result, e.actorId])).toEqual([
        ['store', 'success', 'user:alice'],
        ['read', 'success', 'user:alice'],
        ['read', 'success', 'user:alice'],
      ]);
      // The first read is its own row at once; the two repeats within the window are one row with a count.
      expect(mine.items[1].details).toMatchObject({ version: 1, integrationId: 'audited' });
      expect(mine.items[1].details?.reads).toBeUndefined();
      expect(mine.items[2].details).toMatchObject({ reads: 2, version: 1, integrationId: 'audited' });
      const denied = await audit.query({ tenantId: ctxB.tenantId, resource: meta.id });
      expect(denied.items.map((e) => [e.action, e.result])).toEqual([['read', 'denied']]);
    });

    it('an id that is no credential id (a route parameter passed through) is not found, and neither the error nor the audit repeats it', async () => {
      const ctxI: OperationContext = { tenantId: `bad-ids-${run}`, actor: { id: 'user:app' } };
      const pasted = `sk_live_pasted_${run}`; // what a user put in the id field
      for (const call of [
        () => service.get(ctxI, pasted),
        () => service.getVersion(ctxI, pasted, 1),
        () => service.rotate(ctxI, pasted, secret()),
        () => service.updateMetadata(ctxI, pasted, { tags: {} }),
        () => service.delete(ctxI, pasted),
      ]) {
        const err = await rejection(call());
        expect(err).toBeInstanceOf(CredentialNotFoundError);
        expect(err.message).toBe('Credential (not a credential id) not found');
      }
      // The same text in the names of a store (with a space: no identifier) or as its type is refused, and not audited either.
      const store = { integrationId: `${pasted} x`, connectionId: 'c', type: pasted as CredentialType, value: secret() };
      expect(await rejection(service.store(ctxI, store))).toBeInstanceOf(CredentialValidationError);
      expect(await rejection(service.store(ctxI, { ...store, integrationId: 'ok', connectionId: `${pasted} x` }))).toBeInstanceOf(CredentialValidationError);
      const [batch] = await service.storeMany([{ ctx: ctxI, input: store }]);
      expect('error' in batch && batch.error).toBeInstanceOf(CredentialValidationError);
      await moduleRef.get(ReadAuditCoalescer).flush();
      await audit.flush();
      const rows = (await audit.query({ tenantId: ctxI.tenantId, order: 'asc', limit: 100 })).items;
      // (Five denials of one actor also raise a suspicious_activity row, checked below for the text too.)
      expect(rows.filter((r) => r.action !== 'suspicious_activity').map((r) => [r.action, r.result, r.resource])).toEqual([
        ['read', 'denied', '(not a credential id)'],
        ['read', 'denied', '(not a credential id)'],
        ['rotate', 'denied', '(not a credential id)'],
        ['update_metadata', 'denied', '(not a credential id)'],
        ['delete', 'denied', '(not a credential id)'],
        ['store', 'failure', 'connection:(invalid)/c'],
        ['store', 'failure', 'connection:ok/(invalid)'],
        ['store', 'failure', 'connection:(invalid)/c'],
      ]);
      expect(rows.filter((r) => r.action === 'store').map((r) => r.details)).toEqual([{ type: '(invalid)' }, { type: '(invalid)' }, { type: '(invalid)' }]);
      expect(JSON.stringify(rows)).not.toContain(pasted);
    });

    it('leaves exactly the expected audit rows over a whole lifecycle, failures included', async () => {
      const ctxL: OperationContext = { tenantId: `lifecycle-${run}`, actor: { id: 'user:lc' }, correlationId: 'corr-1' };
      const meta = await service.store(ctxL, { integrationId: 'audited', connectionId: 'life', type: CredentialType.API_KEY, value: secret() });
      await service.get(ctxL, meta.id);
      const rotated = await service.rotate(ctxL, meta.id, secret(), { expectedVersion: meta.rowVersion });
      await rejection(service.rotate(ctxL, meta.id, secret(), { expectedVersion: meta.rowVersion })); // stale: conflict
      await service.getVersion(ctxL, meta.id, 1);
      const tagged = await service.updateMetadata(ctxL, meta.id, { tags: { team: 'core' }, expectedVersion: rotated.rowVersion });
      await service.rollback(ctxL, meta.id, 1, { expectedVersion: tagged.rowVersion });
      await service.delete(ctxL, meta.id);
      await rejection(service.get(ctxL, meta.id)); // deleted: not found
      await moduleRef.get(ReadAuditCoalescer).flush();
      await audit.flush();

      const rows = (await audit.query({ tenantId: ctxL.tenantId, order: 'asc', limit: 100 })).items;
      // Writes are audited in their own transaction, so they appear in operation order.
      expect(rows.filter((r) => r.action !== 'read').map((r) => [r.action, r.result, r.errorCode ?? null])).toEqual([
        ['store', 'success', null],
        ['rotate', 'success', null],
        ['rotate', 'failure', '2003:CONFLICT'],
        ['update_metadata', 'success', null],
        ['rollback', 'success', null],
        ['delete', 'success', null],
      ]);
      // Reads go through the buffer: the first successful read of version 1 (get) is a row at once, its
      // repeat within the window (getVersion 1) a row with a count; the read after the delete is a
      // denial (indistinguishable from another tenant's credential) and is never folded.
      const reads = rows.filter((r) => r.action === 'read');
      expect(reads.map((r) => [r.result, r.errorCode ?? null, r.details?.reads ?? null]).sort()).toEqual(
        [
          ['denied', '2002:NOT_FOUND', null],
          ['success', null, null],
          ['success', null, 1],
        ].sort(),
      );
      expect(rows.every((r) => r.resource === meta.id && r.actorId === 'user:lc' && r.correlationId === 'corr-1')).toBe(true);
      expect((await audit.verify({ tenantId: ctxL.tenantId })).valid).toBe(true);
    });

    it('emits domain events with ids and versions, never values', async () => {
      const meta = await service.store(ctxA, { integrationId: 'events', connectionId: 'c', type: CredentialType.API_KEY, value: secret() });
      const ofMeta = () => events.filter((e) => e.credentialId === meta.id);
      // State changes are delivered by the outbox dispatcher after commit (no order across events):
      // each is awaited before the next step, so the order below is the order of the operations.
      const arrived = (n: number) => eventually(() => expect(ofMeta()).toHaveLength(n));
      await arrived(1);
      await service.rotate(ctxA, meta.id, secret());
      await arrived(2);
      await service.rollback(ctxA, meta.id, 1);
      await arrived(3);
      await service.updateMetadata(ctxA, meta.id, { tags: { x: 'y' } });
      await arrived(4);
      await service.get(ctxA, meta.id);
      await arrived(5);
      await service.delete(ctxA, meta.id);
      await arrived(6);
      const mine = ofMeta();
      expect(mine.map((e) => [e.name, e.version])).toEqual([
        [CredentialEvents.STORED, 1],
        [CredentialEvents.ROTATED, 2],
        [CredentialEvents.ROLLED_BACK, 3],
        [CredentialEvents.METADATA_UPDATED, 3],
        [CredentialEvents.READ, 3],
        [CredentialEvents.DELETED, 3],
      ]);
      expect(mine.find((e) => e.name === CredentialEvents.ROLLED_BACK)?.sourceVersion).toBe(1);
    });

    it('a state change reaches a bus listener exactly once, through the outbox row written with it', async () => {
      const dispatcher = moduleRef.get(OutboxDispatcher);
      const meta = await service.store(ctxA, { integrationId: 'events-once', connectionId: 'c', type: CredentialType.API_KEY, value: secret() });
      const rotated = await service.rotate(ctxA, meta.id, secret());
      const ofMeta = () => events.filter((e) => e.credentialId === meta.id);
      await eventually(() => expect(ofMeta()).toHaveLength(2));
      const [row] = await dataSource.query(
        `SELECT id, tenant_id AS "tenantId", delivered_at AS "deliveredAt" FROM cv_outbox WHERE name = 'credential.rotated' AND payload LIKE '%${meta.id}%'`,
      );
      expect(row).toMatchObject({ tenantId: ctxA.tenantId });
      await eventually(async () => expect((await dataSource.query(`SELECT delivered_at AS d FROM cv_outbox WHERE id = '${row.id}'`))[0].d).not.toBeNull());
      // More passes deliver nothing again.
      await dispatcher.drain();
      await dispatcher.drain();
      const got = ofMeta().find((e) => e.name === CredentialEvents.ROTATED);
      expect(ofMeta().filter((e) => e.name === CredentialEvents.ROTATED)).toHaveLength(1);
      expect(got).toEqual({
        name: CredentialEvents.ROTATED,
        credentialId: meta.id,
        tenantId: ctxA.tenantId,
        integrationId: 'events-once',
        connectionId: 'c',
        type: CredentialType.API_KEY,
        version: 2,
        rowVersion: rotated.rowVersion,
        status: CredentialStatus.ACTIVE,
        actorId: 'user:alice',
        correlationId: 'corr-1',
        occurredAt: expect.any(Date),
        eventId: row.id,
      });
    });

    it('concurrent conditional writers: exactly one compare-and-set wins, the others get CONFLICT and leave nothing', async () => {
      const meta = await service.store(ctxA, { integrationId: 'race-cas', connectionId: 'c', type: CredentialType.API_KEY, value: secret() });
      const expectedVersion = meta.rowVersion;
      const outcomes = await Promise.allSettled([
        service.rotate(ctxA, meta.id, secret(), { expectedVersion }),
        service.updateMetadata(ctxA, meta.id, { tags: { who: 'b' }, expectedVersion }),
        service.rotate(ctxA, meta.id, secret(), { expectedVersion }),
        service.updateMetadata(ctxA, meta.id, { tags: { who: 'd' }, expectedVersion }),
      ]);
      const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      expect(lost.map((o) => o.reason)).toEqual([0, 1, 2].map(() => expect.any(CredentialConflictError)));
      expect(await service.getMetadata(ctxA, meta.id)).toMatchObject({ rowVersion: expectedVersion + 1 });
      const audited = await audit.query({ tenantId: ctxA.tenantId, resource: meta.id, order: 'asc' });
      expect(audited.items.filter((e) => e.result === 'success')).toHaveLength(2); // the store and the one winner
      expect(audited.items.filter((e) => e.errorCode === '2003:CONFLICT')).toHaveLength(3);
    });

    it('a failing audit write is logged by class and code, never by its message', async () => {
      const marker = 'MARKER-audit-9f2c';
      const refuse = () => Promise.reject(Object.assign(new Error(`insert failed near '${marker}'`), { code: 'SQLITE_IOERR' }));
      const spies = [jest.spyOn(audit, 'recordRead').mockImplementation(refuse), jest.spyOn(audit, 'record').mockImplementation(refuse), jest.spyOn(audit, 'recordMany').mockImplementation(refuse)];
      const from = logger.lines.length;
      try {
        expect(await rejection(service.get(ctxA, 'no-such-credential'))).toBeDefined(); // failed read
        expect(await rejection(service.rotate(ctxA, 'no-such-credential', secret()))).toBeDefined(); // failed write
        const [bad] = await service.storeMany([{ ctx: ctxA, input: { integrationId: 'audit-log-text', connectionId: 'not an id!', type: CredentialType.API_KEY, value: secret() } }]);
        expect(bad.error).toBeDefined();
      } finally {
        for (const s of spies) s.mockRestore();
      }
      const lines = logger.lines.slice(from).filter((l) => /could not audit/i.test(l));
      expect(lines).toHaveLength(3);
      for (const l of lines) {
        expect(l).toContain('Error(SQLITE_IOERR)');
        expect(l).not.toContain(marker);
      }
    });

    it('no stored value appears in any metadata or audit row, event or log line', async () => {
      await moduleRef.get(ReadAuditCoalescer).flush();
      await audit.flush();
      const tables = ['cv_credentials', 'cv_credential_versions', 'cv_envelope_values', AUDIT_TABLE];
      const dump: string[] = [];
      for (const t of tables) {
        const rows = await dataSource.query(`SELECT * FROM ${t}`);
        expect(rows.length).toBeGreaterThan(0);
        dump.push(JSON.stringify(rows));
      }
      dump.push(JSON.stringify(events));
      dump.push(...logger.lines);
      const haystack = dump.join('\n');
      expect(values.size).toBeGreaterThan(50);
      const leaked = [...values].filter((v) => haystack.includes(v));
      expect(leaked).toEqual([]);
      expect(logger.lines.length).toBeGreaterThan(0);
      // Nor a vault secret's name: it carries the tenant (log lines name the credential id instead).
      const names = ((await dataSource.query('SELECT DISTINCT vault_secret_name AS name FROM cv_credential_versions WHERE vault_secret_name IS NOT NULL')) as Array<{ name: string }>).map((r) => r.name);
      expect(names.length).toBeGreaterThan(0);
      expect(names.filter((n) => logger.lines.some((l) => l.toLowerCase().includes(n.toLowerCase())))).toEqual([]);
    });
  });
});
