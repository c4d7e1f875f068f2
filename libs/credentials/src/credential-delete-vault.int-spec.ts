/**
 * Integration: what a credential's delete leaves in Key Vault, on SQLite and PostgreSQL with the real SDK against the
 * local vault. A delete soft-deletes the credential's secrets, and a soft-deleted secret can be recovered at the vault
 * (by an operator, within the retention period): it must then come back with no version enabled — no readable value of
 * a credential the app says is deleted, the orphans of crashed writes included. And the vault side of a delete is
 * durable: when the vault fails it (or the process dies after the commit), the outbox retries it until it is done,
 * without touching the secret of a credential stored in the same slot meanwhile. So is a revoke's: a revoke whose
 * process died (or whose vault calls failed) after its status change leaves no version enabled for long either.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { DataSource } from 'typeorm';
import { type OperationContext, Outbox, type OutboxEvent, OutboxEventEntity, OutboxHandlerRegistry, type OutboxPayload, TransactionRunner } from '@app/common';
import { isKeyVaultError, KeyVaultErrorCode, KeyVaultMetrics, KeyVaultProvider, type SecretProperties } from '@app/key-vault';
import type { Counter } from 'prom-client';
import { RestError } from '@azure/core-rest-pipeline';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, credentialsStackImports, DATABASE_KINDS, killHard, startCrashChild, writeRequireHook, type TestDatabase } from '@app/testing';
import { CredentialNotFoundError, CredentialsService, CredentialValueMissingError, CredentialType, credentialSecretName, ValueStoreKind, VAULT_VALUE_DELETION_EVENT, VaultValueDeletion } from './index';
import { VAULT_VALUE_REVOKE_EVENT } from './credentials.constants';

const CHILD = join(__dirname, 'testing', 'value-write-crash.child.ts');
/** The child loads only the stack helper of the test support (the rest starts the OAuth test server). */
const STACK_ONLY = { '@app/testing': ['test/support/stack.ts'] };

jest.setTimeout(120_000);

/**
 * The revoke's grace here (10 s by default): longer than the second the grace test watches the event for, and far above
 * the outbox's backoff (at most 200 ms), so a redelivery after the backoff cannot pass for one after the grace.
 */
const REVOKE_GRACE_MS = 3_000;
/** How long the vault holds back a delete's answer (its deletion done meanwhile): room for an operator's recover, however loaded the machine. */
const HELD_DELETE_MS = 2_500;

describe.each(DATABASE_KINDS)('what a delete leaves in Key Vault on %s', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let moduleRef: TestingModule;
  let service: CredentialsService;
  let vault: KeyVaultProvider;
  let dir: string;
  const run = randomBytes(3).toString('hex');
  const ctx: OperationContext = { tenantId: `vdel_${run}`, actor: { id: 'user:ops' } };
  const secret = () => `tok_${randomBytes(18).toString('base64url')}`;
  const nameOf = (connectionId: string, generation: number) =>
    credentialSecretName({ tenantId: ctx.tenantId, integrationId: 'github', connectionId, type: CredentialType.API_KEY }, generation);

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    db = await createTestDatabase(kind);
    dir = mkdtempSync(join(tmpdir(), 'cv-vdel-'));
    moduleRef = await Test.createTestingModule({
      imports: credentialsStackImports({
        database: db.options,
        vault: emu,
        keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20, breaker: { consecutiveFailures: 1000 } } },
        persistence: { outbox: { pollIntervalMs: 50, backoff: { baseMs: 50, maxMs: 200 } } },
        credentials: { valueStores: { api_key: ValueStoreKind.VAULT }, revokeCompletionGraceMs: REVOKE_GRACE_MS },
      }),
    }).compile();
    await moduleRef.init();
    service = moduleRef.get(CredentialsService);
    vault = moduleRef.get(KeyVaultProvider);
  });

  afterEach(() => {
    emu.clearFaults();
    emu.clearDenials();
  });

  afterAll(async () => {
    await moduleRef?.close();
    await emu?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function allVersions(name: string): Promise<SecretProperties[]> {
    const out: SecretProperties[] = [];
    for await (const v of vault.listAllSecretVersions(name)) out.push(v);
    return out;
  }

  async function isSoftDeleted(name: string): Promise<boolean> {
    try {
      await vault.getDeletedSecret(name);
      return true;
    } catch (e) {
      if (isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND)) return false;
      throw e;
    }
  }

  /** What an operator gets back by recovering the soft-deleted secret at the vault: its versions, enabled or not. */
  async function recovered(name: string): Promise<Array<[string, boolean]>> {
    // Once every delete's vault side is done, as an operator would: a delete still pending (a vault failure's retry)
    // would delete the recovered secret again. (One recovered while a delete waits is the case below that says so.)
    await until(async () => (await moduleRef.get(VaultValueDeletion).pending()) === 0, "the deletes' events delivered");
    await vault.recoverDeletedSecret(name);
    return (await allVersions(name)).map((v) => [v.version, v.enabled]);
  }

  async function until(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('a deleted secret recovered at the vault comes back with every version disabled, orphans of crashed writes included', async () => {
    const meta = await service.store(ctx, { integrationId: 'github', connectionId: 'recover', type: CredentialType.API_KEY, value: secret() });
    await service.rotate(ctx, meta.id, secret());
    await service.rotate(ctx, meta.id, secret());
    const name = nameOf('recover', 0);
    // An orphan: a version a write crashed with before its commit (tagged for the credential, referenced by no metadata).
    const orphan = await vault.setSecret(name, secret(), { tags: { 'cv-credential': meta.id, 'cv-version': '4' } });
    expect((await allVersions(name)).filter((v) => v.enabled)).toHaveLength(4);

    await service.delete(ctx, meta.id);

    expect(await isSoftDeleted(name)).toBe(true);
    const back = await recovered(name);
    expect(back).toHaveLength(4);
    expect(back.filter(([, enabled]) => enabled)).toEqual([]);
    expect(back.map(([v]) => v)).toContain(orphan.properties.version);
    // Not readable at the vault either: a disabled secret's get is refused.
    expect(await vault.getSecret(name).catch((e: unknown) => e)).toMatchObject({ code: KeyVaultErrorCode.DISABLED });
  });

  /** The sum of `metric`'s series with these labels. */
  const count = async (metric: Counter<string>, labels: Record<string, string>) =>
    (await metric.get()).values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((n, v) => n + v.value, 0);

  /** A new credential to delete, once the earlier deletes' events are delivered (what they count is not this one's). */
  async function toDelete(connectionId: string) {
    const deletion = moduleRef.get(VaultValueDeletion);
    await until(async () => (await deletion.pending()) === 0, "the earlier deletes' events delivered");
    const meta = await service.store(ctx, { integrationId: 'github', connectionId, type: CredentialType.API_KEY, value: secret() });
    return { deletion, metrics: moduleRef.get(KeyVaultMetrics), meta };
  }

  it("a delete's vault side runs once; a repeat of its event (a crash before the event's mark) finds the secret deleted already: outcome not_found, no vault error", async () => {
    const { deletion, metrics, meta } = await toDelete('repeat');
    const errorsBefore = await count(metrics.errors, { code: 'KEY_NOT_FOUND' });
    const notFoundBefore = await count(metrics.operations, { operation: 'deleteSecret', outcome: 'not_found' });
    const deletesBefore = emu.stats().byOperation.deleteSecret ?? 0;

    // runNow soft-deletes the secret and marks the event: the outbox's delivery shares that run, or finds it done.
    await service.delete(ctx, meta.id);
    await until(async () => (await deletion.pending()) === 0, "the delete's event delivered");
    expect((emu.stats().byOperation.deleteSecret ?? 0) - deletesBefore).toBe(1);
    // At least once: the same vault side delivered again, as after a crash between the vault calls and the event's mark.
    // (Not the event put back: the dispatcher's own delivery of it, which found it done, may still mark it after that.)
    await moduleRef.get(TransactionRunner).run(() => moduleRef.get(Outbox).add({ name: VAULT_VALUE_DELETION_EVENT, tenantId: ctx.tenantId, payload: { credentialId: meta.id } }));
    await until(async () => (await deletion.pending()) === 0, 'the repeat delivered');
    expect(await count(metrics.operations, { operation: 'deleteSecret', outcome: 'not_found' })).toBe(notFoundBefore + 1);
    expect(await count(metrics.errors, { code: 'KEY_NOT_FOUND' })).toBe(errorsBefore);
  });

  it("a delivery of the delete's event claimed before the delete marked it, whose handler runs once the delete is done, does nothing: a secret recovered since stays", async () => {
    const { deletion, meta } = await toDelete('claimed-before-mark');
    const name = nameOf('claimed-before-mark', 0);
    await service.delete(ctx, meta.id);
    await until(async () => (await deletion.pending()) === 0, "the delete's event delivered");
    // The operator recovers the secret once the delete is done, as OPERATIONS says to.
    await vault.recoverDeletedSecret(name);
    const row = (await moduleRef.get(DataSource).getRepository(OutboxEventEntity).find({ where: { name: VAULT_VALUE_DELETION_EVENT, tenantId: ctx.tenantId } })).find(
      (e) => (e.payload as { credentialId?: string }).credentialId === meta.id,
    )!;
    const deletesBefore = emu.stats().byOperation.deleteSecret ?? 0;
    // What a dispatcher hands the handler for the event it claimed before the mark (its batch held behind a slow
    // handler, or another replica's): the event as claimed, undelivered then.
    const claimed: OutboxEvent = { id: row.id, name: row.name, tenantId: row.tenantId, payload: row.payload as OutboxPayload, createdAt: row.createdAt, attempts: row.attempts };
    for (const handler of moduleRef.get(OutboxHandlerRegistry).handlersFor(VAULT_VALUE_DELETION_EVENT)) await handler(claimed);
    expect((emu.stats().byOperation.deleteSecret ?? 0) - deletesBefore).toBe(0);
    expect(await isSoftDeleted(name)).toBe(false);
    expect(await vault.getSecret(name).catch((e: unknown) => e)).toMatchObject({ code: KeyVaultErrorCode.DISABLED });
  });

  it('a secret recovered at the vault while its delete waits for the deletion: the delete and its event end within seconds, warned once, and nothing deletes the secret again', async () => {
    const logger = new CapturingLogger();
    Logger.overrideLogger(logger);
    try {
      const { deletion, meta } = await toDelete('recovered-mid-delete');
      await service.rotate(ctx, meta.id, secret());
      const name = nameOf('recovered-mid-delete', 0);
      const deletesBefore = emu.stats().byOperation.deleteSecret ?? 0;
      // The vault holds the delete's answer back, the deletion done: an operator recovers the secret before the wait begins.
      emu.injectFault({ kind: 'latency', phase: 'response', latencyMs: HELD_DELETE_MS, operations: ['deleteSecret'], names: [name], count: 1 });
      const started = Date.now();
      const deleting = service.delete(ctx, meta.id);
      await until(() => isSoftDeleted(name), 'the soft-delete');
      await vault.recoverDeletedSecret(name);
      await deleting;
      // Before: the wait read the deleted record (404 for ever) to the attempt's timeout (10 s), or to the outbox's
      // handlerTimeoutMs (10 s), every other event waiting behind it; and a retry deleted the recovered secret again.
      expect(Date.now() - started).toBeLessThan(HELD_DELETE_MS + 2_000);
      await until(async () => (await deletion.pending()) === 0, "the delete's event delivered", 2_000);
      // The outbox is not held: the next delete's event is delivered at once.
      const next = await service.store(ctx, { integrationId: 'github', connectionId: 'after-recovered', type: CredentialType.API_KEY, value: secret() });
      await service.delete(ctx, next.id);
      await until(async () => (await deletion.pending()) === 0, "the next delete's event delivered", 2_000);
      // One DELETE each: the recovered secret stays, live, with nothing readable in it.
      expect((emu.stats().byOperation.deleteSecret ?? 0) - deletesBefore).toBe(2);
      expect(await isSoftDeleted(name)).toBe(false);
      expect((await allVersions(name)).map((v) => v.enabled)).toEqual([false, false]);
      expect(await vault.getSecret(name).catch((e: unknown) => e)).toMatchObject({ code: KeyVaultErrorCode.DISABLED });
      expect(logger.lines.filter((l) => l.startsWith('warn') && l.includes(meta.id))).toEqual([
        expect.stringContaining(`credential ${meta.id}: its secret ${name} was recovered at the vault while its delete completed`),
      ]);
    } finally {
      Logger.overrideLogger(new Logger());
    }
  });

  it('a delete meeting another delete of the secret completing (409 being deleted, as another replica\'s delivery races it) is done: outcome being_deleted, no vault error', async () => {
    const { deletion, metrics, meta } = await toDelete('racing');
    const errorsBefore = await count(metrics.errors, { code: 'OBJECT_BEING_DELETED' });
    const beingDeletedBefore = await count(metrics.operations, { operation: 'deleteSecret', outcome: 'being_deleted' });
    // Azure's answer while another delete of the name completes (the emulator answers that race 404: the SDK's call stands in).
    const sdk = (vault as unknown as { client: { beginDeleteSecret: (...args: unknown[]) => Promise<unknown> } }).client;
    const racing = jest.spyOn(sdk, 'beginDeleteSecret').mockRejectedValue(new RestError('Secret is currently being deleted.', { code: 'Conflict', statusCode: 409 }));
    try {
      await service.delete(ctx, meta.id);
      await until(async () => (await deletion.pending()) === 0, "the delete's event delivered");
      expect(racing).toHaveBeenCalled();
      expect(await count(metrics.operations, { operation: 'deleteSecret', outcome: 'being_deleted' })).toBe(beingDeletedBefore + racing.mock.calls.length);
      expect(await count(metrics.errors, { code: 'OBJECT_BEING_DELETED' })).toBe(errorsBefore);
    } finally {
      racing.mockRestore();
    }
  });

  it('deleteMany and deleteByConnection leave no enabled version either', async () => {
    const a = await service.store(ctx, { integrationId: 'github', connectionId: 'batch-a', type: CredentialType.API_KEY, value: secret() });
    const b = await service.store(ctx, { integrationId: 'github', connectionId: 'batch-b', type: CredentialType.API_KEY, value: secret() });
    expect(await service.deleteMany(ctx, [a.id])).toEqual({ deleted: [a.id], notFound: [] });
    expect((await service.deleteByConnection(ctx, 'github', 'batch-b')).deleted).toEqual([b.id]);
    for (const name of [nameOf('batch-a', 0), nameOf('batch-b', 0)]) expect((await recovered(name)).filter(([, enabled]) => enabled)).toEqual([]);
  });

  it('a vault failure during the delete is retried until the versions are disabled and the secret soft-deleted', async () => {
    const meta = await service.store(ctx, { integrationId: 'github', connectionId: 'retry', type: CredentialType.API_KEY, value: secret() });
    const name = nameOf('retry', 0);
    const deletion = moduleRef.get(VaultValueDeletion);
    await until(async () => (await deletion.pending()) === 0, 'the earlier deletes\' events delivered');
    emu.injectFault({ kind: 'status', status: 503, operations: ['updateSecret', 'deleteSecret'] });

    // The metadata delete commits: the credential is gone for the app at once.
    await service.delete(ctx, meta.id);
    expect(await service.get(ctx, meta.id).catch((e: unknown) => e)).toBeInstanceOf(CredentialNotFoundError);
    // The vault side is pending, and says so; the value is still enabled at the vault.
    await new Promise((r) => setTimeout(r, 300));
    expect(await deletion.pending()).toBe(1);
    expect((await allVersions(name)).filter((v) => v.enabled)).toHaveLength(1);

    // Meanwhile the same slot is stored again: its value goes to the next secret name, which the retry leaves alone.
    const successor = secret();
    const next = await service.store(ctx, { integrationId: 'github', connectionId: 'retry', type: CredentialType.API_KEY, value: successor });

    emu.clearFaults();
    await until(() => isSoftDeleted(name), 'the retried soft-delete');
    // The dispatcher records the delivery after the vault calls it made: the count drops a moment after the soft-delete.
    await until(async () => (await deletion.pending()) === 0, 'the retried delete counted done');
    expect((await recovered(name)).filter(([, enabled]) => enabled)).toEqual([]);
    expect(await isSoftDeleted(nameOf('retry', 1))).toBe(false);
    expect((await service.get(ctx, next.id)).value).toBe(successor);
  });

  /**
   * While the vault is away (its connections reset: SERVICE_UNAVAILABLE) every attempt of every delete's event fails,
   * at the outbox's backoff: the log says the outage once with the deletes waiting and its end once — it warned at
   * each attempt of each event, twice (this lib's line and the dispatcher's).
   */
  it('while Key Vault is unreachable, the deletes waiting are said once (no warning per attempt), the event deferred, and the end once', async () => {
    const logger = new CapturingLogger();
    Logger.overrideLogger(logger);
    try {
      const deletion = moduleRef.get(VaultValueDeletion);
      await until(async () => (await deletion.pending()) === 0, "the earlier deletes' events delivered");
      const metas = [];
      for (const c of ['away-a', 'away-b', 'away-c']) metas.push(await service.store(ctx, { integrationId: 'github', connectionId: c, type: CredentialType.API_KEY, value: secret() }));
      emu.injectFault({ kind: 'reset' });
      for (const m of metas) await service.delete(ctx, m.id);
      const events = moduleRef.get(DataSource).getRepository(OutboxEventEntity);
      const waiting = async () => (await events.find({ where: { name: VAULT_VALUE_DELETION_EVENT, tenantId: ctx.tenantId } })).filter((e) => !e.deliveredAt);
      // Several attempts of each (backoff at most 200 ms), all failing.
      await until(async () => (await waiting()).length === 3 && (await waiting()).every((e) => e.attempts >= 3), 'three failed attempts of each delete');
      for (const e of await waiting()) expect(e.lastError).toBe('OutboxDeferredError(SERVICE_UNAVAILABLE)');
      const warned = logger.lines.filter((l) => l.startsWith('warn'));
      // The deletes' own answers (one each, after their commit), and the outage once: nothing per attempt.
      expect(warned.filter((l) => /still not deleted|failed delivery/.test(l))).toEqual([]);
      const outage = warned.filter((l) => l.includes('Key Vault'));
      expect(outage).toEqual([expect.stringMatching(/^warn Key Vault is unreachable \(KeyVaultError\(SERVICE_UNAVAILABLE\)\): the vault values of \d+ deleted credentials? wait to be deleted; the outbox retries them/)]);
      // The deletes waiting when the first attempt failed (each delete commits, then fails, on its own).
      expect(Number(/of (\d+) deleted/.exec(outage[0])![1])).toBeGreaterThanOrEqual(1);

      emu.clearFaults();
      await until(async () => (await deletion.pending()) === 0, 'the deletes done once the vault answers');
      expect(logger.lines.filter((l) => l.includes('Key Vault answers again'))).toEqual([
        expect.stringMatching(/^log Key Vault answers again after \d+ s \(\d+ failed attempts\): the vault values of deleted credentials are deleted again/),
      ]);
      for (const c of ['away-a', 'away-b', 'away-c']) expect(await isSoftDeleted(nameOf(c, 0))).toBe(true);
    } finally {
      Logger.overrideLogger(new Logger());
    }
  });

  it('a vault refusing the delete (403) is still a warning at each attempt: news each time, not an outage', async () => {
    const logger = new CapturingLogger();
    Logger.overrideLogger(logger);
    try {
      const { deletion, meta } = await toDelete('forbidden');
      emu.deny({ operations: ['updateSecret'], model: 'rbac' });
      await service.delete(ctx, meta.id);
      await until(async () => logger.lines.filter((l) => l.startsWith('warn') && l.includes(`credential ${meta.id}: its vault values are still not deleted`)).length >= 2, 'two failed attempts warned');
      expect(logger.lines.filter((l) => l.includes('Key Vault is unreachable'))).toEqual([]);
      emu.clearDenials();
      await until(async () => (await deletion.pending()) === 0, 'the delete done');
    } finally {
      Logger.overrideLogger(new Logger());
    }
  });

  it('after delete, restore and delete again, a store gets a secret name of its own, and the pending delete soft-deletes the restored one\'s', async () => {
    // A restore stores with the backup's createdAt: the slot's newest row (by createdAt) is then not the one with the
    // highest generation. The next store must still start past every generation the slot used.
    const first = await service.store(ctx, { integrationId: 'github', connectionId: 'reuse', type: CredentialType.API_KEY, value: secret() });
    await service.delete(ctx, first.id);
    const restored = await service.store(ctx, { integrationId: 'github', connectionId: 'reuse', type: CredentialType.API_KEY, value: secret(), createdAt: new Date('2020-01-01T00:00:00Z') });
    const deletion = moduleRef.get(VaultValueDeletion);
    await until(async () => (await deletion.pending()) === 0, 'the earlier deletes\' events delivered');
    emu.injectFault({ kind: 'status', status: 503, operations: ['updateSecret', 'deleteSecret'] });
    await service.delete(ctx, restored.id);
    await new Promise((r) => setTimeout(r, 300));
    expect(await deletion.pending()).toBe(1);

    const successor = secret();
    const next = await service.store(ctx, { integrationId: 'github', connectionId: 'reuse', type: CredentialType.API_KEY, value: successor });
    emu.clearFaults();
    await until(async () => (await deletion.pending()) === 0, 'the retried vault side');

    expect((await service.get(ctx, next.id)).value).toBe(successor);
    // Whose versions each generation's secret holds (a soft-deleted one cannot be listed: it holds no one's live value).
    const holders = async (g: number) => new Set((await allVersions(nameOf('reuse', g)).catch(() => [])).map((v) => v.tags['cv-credential']));
    const generationsOf = async (id: string) => (await Promise.all([0, 1, 2, 3].map(async (g) => ((await holders(g)).has(id) ? [g] : [])))).flat();
    expect(await generationsOf(next.id)).toEqual([2]);
    expect([...(await holders(2))]).toEqual([next.id]);
    // The restored credential's secret is its own, so its delete soft-deleted it (nothing of it readable, even recovered).
    expect(await isSoftDeleted(nameOf('reuse', 1))).toBe(true);
    expect(await isSoftDeleted(nameOf('reuse', 0))).toBe(true);
    expect((await recovered(nameOf('reuse', 1))).filter(([, enabled]) => enabled)).toEqual([]);
  });

  it('a delete leaves alone the versions another live credential has in a secret it recorded', async () => {
    // Rows written before a store took the slot's highest generation can share a name; the delete must not take the other's values.
    const first = await service.store(ctx, { integrationId: 'github', connectionId: 'shared', type: CredentialType.API_KEY, value: secret() });
    const other = await service.store(ctx, { integrationId: 'github', connectionId: 'shared-other', type: CredentialType.API_KEY, value: secret() });
    const theirs = await vault.setSecret(nameOf('shared', 0), secret(), { tags: { 'cv-credential': other.id, 'cv-version': '2' } });
    await service.delete(ctx, first.id);
    expect(await isSoftDeleted(nameOf('shared', 0))).toBe(false);
    const left = (await allVersions(nameOf('shared', 0))).filter((v) => v.enabled);
    expect(left.map((v) => v.version)).toEqual([theirs.properties.version]);
  });

  it('a value missing at the vault is named by the generation its secret name has, after a soft-deleted name was skipped', async () => {
    // Generation 0 of the slot is soft-deleted at the vault (not by this lib): the store moves on to generation 1.
    await vault.setSecret(nameOf('missing', 0), secret());
    await vault.deleteSecret(nameOf('missing', 0));
    const meta = await service.store(ctx, { integrationId: 'github', connectionId: 'missing', type: CredentialType.API_KEY, value: secret() });
    expect((await allVersions(nameOf('missing', 1))).map((v) => v.tags['cv-credential'])).toEqual([meta.id]);
    await vault.deleteSecret(nameOf('missing', 1));
    const error = await service.get(ctx, meta.id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CredentialValueMissingError);
    expect((error as Error).message).toBe(`credential ${meta.id}: the vault secret of generation 1 no longer has this version`);
  });

  it('a predecessor\'s disabled orphan in the successor\'s secret does not keep that secret from its soft-delete', async () => {
    const first = await service.store(ctx, { integrationId: 'github', connectionId: 'orphaned', type: CredentialType.API_KEY, value: secret() });
    // A rollover write of `first` that crashed before its commit: an orphan in the next generation's name.
    await vault.setSecret(nameOf('orphaned', 1), secret(), { tags: { 'cv-credential': first.id, 'cv-version': '2' } });
    await service.delete(ctx, first.id);
    const next = await service.store(ctx, { integrationId: 'github', connectionId: 'orphaned', type: CredentialType.API_KEY, value: secret() });
    await service.delete(ctx, next.id);
    expect(await isSoftDeleted(nameOf('orphaned', 1))).toBe(true);
    expect((await recovered(nameOf('orphaned', 1))).filter(([, enabled]) => enabled)).toEqual([]);
  });

  it('a process killed between the delete\'s commit and its vault calls: the outbox does them', async () => {
    const meta = await service.store(ctx, { integrationId: 'github', connectionId: 'crash', type: CredentialType.API_KEY, value: secret() });
    await service.rotate(ctx, meta.id, secret());
    const name = nameOf('crash', 0);
    const { child, line } = startCrashChild(writeRequireHook(dir, STACK_ONLY), CHILD, 'COMMITTED', {
      env: { CV_TEST_DS: JSON.stringify(db.options), CV_VAULT_URL: emu.vaultUrl, CV_VAULT_CA: emu.caCertPem, CV_TENANT: ctx.tenantId, CV_CREDENTIAL: meta.id, CV_STEP: 'delete' },
    });
    await line;
    expect(await killHard(child)).toBe('SIGKILL');
    expect(await service.getMetadata(ctx, meta.id).catch((e: unknown) => e)).toBeInstanceOf(CredentialNotFoundError);

    // This process dispatches the event the dead one committed with its delete.
    await until(() => isSoftDeleted(name), 'the soft-delete from the outbox');
    const back = await recovered(name);
    expect(back).toHaveLength(2);
    expect(back.filter(([, enabled]) => enabled)).toEqual([]);
  });

  it("a revoke's completion event waits out the revoke's grace as a deferral: back when the grace ends, not retried before, not warned about", async () => {
    const logger = new CapturingLogger();
    Logger.overrideLogger(logger);
    try {
      const meta = await service.store(ctx, { integrationId: 'github', connectionId: 'revoke-grace', type: CredentialType.API_KEY, value: secret() });
      await service.revoke(ctx, meta.id);
      const events = moduleRef.get(DataSource).getRepository(OutboxEventEntity);
      const event = async () => (await events.find({ where: { name: VAULT_VALUE_REVOKE_EVENT, tenantId: ctx.tenantId } })).find((e) => (e.payload as { credentialId?: string }).credentialId === meta.id);
      await until(async () => ((await event())?.attempts ?? 0) > 0, 'the first delivery of the revoke\'s completion event');
      // A second of polls (every 50 ms, backoff at most 200 ms): a failure would have come back several times.
      await new Promise((r) => setTimeout(r, 1_000));
      const row = (await event())!;
      expect({ attempts: row.attempts, delivered: row.deliveredAt, lastError: row.lastError }).toEqual({ attempts: 1, delivered: null, lastError: 'OutboxDeferredError(REVOKE_COMPLETION_GRACE)' });
      // Redelivered when the grace ends (the revoker counts it from the event's creation), not after the outbox's backoff.
      expect(Math.abs(row.availableAt.getTime() - (row.createdAt.getTime() + REVOKE_GRACE_MS))).toBeLessThan(1_000);
      expect(logger.lines.filter((l) => l.includes(row.id)).map((l) => l.split(' ')[0])).toEqual(['debug']);
    } finally {
      Logger.overrideLogger(new Logger());
    }
  });

  it("while Key Vault is unreachable, a revoke's completion is deferred and the revokes waiting said once (no warning per attempt), its end once", async () => {
    const logger = new CapturingLogger();
    Logger.overrideLogger(logger);
    try {
      const meta = await service.store(ctx, { integrationId: 'github', connectionId: 'revoke-away', type: CredentialType.API_KEY, value: secret() });
      emu.injectFault({ kind: 'reset' });
      await expect(service.revoke(ctx, meta.id)).rejects.toMatchObject({ code: KeyVaultErrorCode.SERVICE_UNAVAILABLE });
      const events = moduleRef.get(DataSource).getRepository(OutboxEventEntity);
      const event = async () => (await events.find({ where: { name: VAULT_VALUE_REVOKE_EVENT, tenantId: ctx.tenantId } })).find((e) => (e.payload as { credentialId?: string }).credentialId === meta.id);
      // Past the grace (its first delivery's deferral), three failed attempts at the outbox's backoff.
      await until(async () => ((await event())?.attempts ?? 0) >= 4, 'three failed completions of the revoke', 15_000);
      expect((await event())!.lastError).toBe('OutboxDeferredError(SERVICE_UNAVAILABLE)');
      const warned = logger.lines.filter((l) => l.startsWith('warn'));
      expect(warned.filter((l) => /still enabled \(attempt|failed delivery/.test(l))).toEqual([]);
      expect(warned.filter((l) => l.includes('Key Vault is unreachable'))).toEqual([
        expect.stringMatching(/^warn Key Vault is unreachable \(KeyVaultError\(SERVICE_UNAVAILABLE\)\): \d+ revokes? wait for their Key Vault versions to be disabled; the outbox retries them/),
      ]);

      emu.clearFaults();
      await until(async () => (await event())?.deliveredAt != null, 'the completion once the vault answers');
      expect((await allVersions(nameOf('revoke-away', 0))).map((v) => v.enabled)).toEqual([false]);
      expect(logger.lines.filter((l) => l.includes('Key Vault answers again'))).toEqual([
        expect.stringMatching(/^log Key Vault answers again after \d+ s \(\d+ failed attempts?\): revoked credentials' Key Vault versions are disabled again/),
      ]);
    } finally {
      Logger.overrideLogger(new Logger());
    }
  });

  it('a revoke whose process died, or whose vault calls failed, after its status change: the outbox disables the versions; a finished revoke is left alone', async () => {
    const crashed = await service.store(ctx, { integrationId: 'github', connectionId: 'revoke-crash', type: CredentialType.API_KEY, value: secret() });
    await service.rotate(ctx, crashed.id, secret());
    const failed = await service.store(ctx, { integrationId: 'github', connectionId: 'revoke-fail', type: CredentialType.API_KEY, value: secret() });
    const done = await service.store(ctx, { integrationId: 'github', connectionId: 'revoke-done', type: CredentialType.API_KEY, value: secret() });
    const { child, line } = startCrashChild(writeRequireHook(dir, STACK_ONLY), CHILD, 'COMMITTED', {
      env: { CV_TEST_DS: JSON.stringify(db.options), CV_VAULT_URL: emu.vaultUrl, CV_VAULT_CA: emu.caCertPem, CV_TENANT: ctx.tenantId, CV_CREDENTIAL: crashed.id, CV_STEP: 'revoke' },
    });
    await line;
    expect(await killHard(child)).toBe('SIGKILL');
    emu.injectFault({ kind: 'status', status: 503, operations: ['updateSecret'], count: 1 });
    await expect(service.revoke(ctx, failed.id)).rejects.toBeDefined();
    emu.clearFaults();
    // The remedy for a leak, right after the failed revoke: a new value. The revoked one stays withdrawn at the vault too.
    const fresh = await service.rotate(ctx, failed.id, secret());
    const answered = (await service.revoke(ctx, done.id)).metadata.rowVersion;
    const doneAt = Date.now();
    // Revoked for the app at once; at the vault, still readable until the outbox has done what the revokes did not.
    expect((await service.getMetadata(ctx, crashed.id)).status).toBe('revoked');
    const enabled = async (connectionId: string) => (await allVersions(nameOf(connectionId, 0))).filter((v) => v.enabled).map((v) => v.version);
    expect(await enabled('revoke-crash')).toHaveLength(2);
    expect(await enabled('revoke-fail')).toHaveLength(2);
    await until(async () => (await enabled('revoke-crash')).length + (await enabled('revoke-fail')).length === 1, 'the outbox finishing both revokes', 30_000);
    // What stays enabled is the rotated-to value, the one the app serves.
    expect(await enabled('revoke-fail')).toEqual([(await vault.getSecret(nameOf('revoke-fail', 0))).properties.version]);
    expect((await service.get(ctx, failed.id)).metadata.version).toBe(fresh.version);
    expect(await vault.getSecret(nameOf('revoke-crash', 0)).catch((e: unknown) => e)).toMatchObject({ code: KeyVaultErrorCode.DISABLED });
    // The finished revoke's event was delivered too, and moved nothing: the rowVersion it answered still holds.
    await new Promise((r) => setTimeout(r, Math.max(0, doneAt + REVOKE_GRACE_MS + 1_000 - Date.now()) + 500)); // past the revoke's grace
    expect((await service.getMetadata(ctx, done.id)).rowVersion).toBe(answered);
  });
});
