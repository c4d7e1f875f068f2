/**
 * Integration: `storeMany` and `verifyValue` with the real SDK over HTTPS to the local vault, the real
 * audit lib and real SQLite / PostgreSQL.
 */
import { randomBytes } from 'node:crypto';
import { Test, type TestingModule } from '@nestjs/testing';
import { AuditAction, auditErrorCode, AuditService } from '@app/audit';
import type { OperationContext } from '@app/common';
import { KeyVaultErrorCode } from '@app/key-vault';
import { emulatorSecretClient, KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, DATABASE_KINDS, rejection, type TestDatabase } from '@app/testing';
import { DataSource } from 'typeorm';
import {
  CredentialAlreadyExistsError,
  CredentialRevokedError,
  CredentialsService,
  CredentialType,
  CredentialValidationError,
  ValueStoreKind,
  type StoreManyItem,
} from './index';
import { EnvelopeValueStore } from './stores/envelope-value-store';

describe.each(DATABASE_KINDS)('CredentialsService.storeMany / verifyValue on %s', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let moduleRef: TestingModule;
  let service: CredentialsService;
  let audit: AuditService;
  let ds: DataSource;
  const values = new Set<string>();
  const run = randomBytes(3).toString('hex');
  const ctxA: OperationContext = { tenantId: `many-a-${run}`, actor: { id: 'user:importer' } };
  const ctxB: OperationContext = { tenantId: `many-b-${run}`, actor: { id: 'user:importer' } };

  const secret = () => {
    const v = `sk_${randomBytes(18).toString('base64url')}`;
    values.add(v);
    return v;
  };
  const item = (ctx: OperationContext, connectionId: string, type = CredentialType.API_KEY, valueStore?: ValueStoreKind): StoreManyItem => ({
    ctx,
    input: { integrationId: 'stripe', connectionId, type, value: secret(), valueStore },
  });
  const count = async (sql: string, params: unknown[] = []) => {
    let n = 0;
    return Number((await ds.query(kind === 'postgres' ? sql.replace(/\?/g, () => `$${++n}`) : sql, params))[0].n);
  };
  const rowsOf = (tenantId: string, table: string) => count(`SELECT COUNT(*) AS n FROM ${table} WHERE tenant_id = ?`, [tenantId]);
  const storeRows = (tenantId: string) => count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = ? AND action = ? AND result = 'success'`, [tenantId, AuditAction.STORE]);
  /** The values sent to the envelope store from now on (until jest.restoreAllMocks). */
  const envelopeValuesWritten = () => {
    const written: string[] = [];
    const write = EnvelopeValueStore.prototype.write;
    jest.spyOn(EnvelopeValueStore.prototype, 'write').mockImplementation(async function (this: EnvelopeValueStore, ...args) {
      written.push(args[0].value);
      return write.apply(this, args);
    });
    return written;
  };

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase(kind);
    moduleRef = await Test.createTestingModule({
      imports: credentialsStackImports({ database: db.options, vault: emu, persistence: { outbox: { dispatch: false } } }),
    }).compile();
    await moduleRef.init();
    service = moduleRef.get(CredentialsService);
    audit = moduleRef.get(AuditService);
    ds = moduleRef.get(DataSource);
  });

  afterEach(() => emu.clearFaults());
  afterAll(async () => {
    await moduleRef?.close();
    await emu?.stop();
    await db?.drop();
  });

  it('stores a batch of two tenants (Key Vault and envelope values) with one transaction; each bad item is its own typed error', async () => {
    await service.store(ctxA, item(ctxA, 'taken').input);
    const items = [
      item(ctxA, 'c1'),
      item(ctxA, 'c1', CredentialType.OAUTH_ACCESS_TOKEN), // envelope by default
      item(ctxB, 'c1'),
      item(ctxA, 'taken'),
      { ctx: ctxA, input: { ...item(ctxA, 'c2').input, connectionId: 'not an id!' } },
      item(ctxB, 'c2', CredentialType.CUSTOM_SECRET, ValueStoreKind.ENVELOPE),
      item(ctxB, 'c2', CredentialType.CUSTOM_SECRET),
    ];
    const results = await service.storeMany(items);

    expect(results.map((r) => (r.credential ? 'ok' : (r.error as Error).constructor.name))).toEqual([
      'ok', 'ok', 'ok', 'CredentialAlreadyExistsError', 'CredentialValidationError', 'ok', 'CredentialValidationError',
    ]);
    expect((results[3].error as CredentialAlreadyExistsError).existingId).toBeDefined();
    expect(results[1].credential!.valueStore).toBe(ValueStoreKind.ENVELOPE);
    for (const [i, r] of results.entries()) {
      if (r.credential) expect((await service.get(items[i].ctx, r.credential.id)).value).toBe(items[i].input.value);
    }
    // One STORE row per stored credential (plus the earlier single store), one outbox event each.
    expect(await storeRows(ctxA.tenantId)).toBe(1 + 2);
    expect(await storeRows(ctxB.tenantId)).toBe(2);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_outbox WHERE name = 'credential.stored' AND tenant_id = ?`, [ctxB.tenantId])).toBe(2);
    for (const { tenantId } of [ctxA, ctxB]) expect(await audit.verify({ tenantId })).toMatchObject({ valid: true });
    for (const table of ['cv_credentials', 'cv_credential_versions', 'cv_audit_log', 'cv_outbox', 'cv_envelope_values']) {
      const dump = JSON.stringify(await ds.query(`SELECT * FROM ${table}`));
      for (const v of values) expect(dump).not.toContain(v);
    }
  });

  it('concurrent batches of one tenant (two connections on PostgreSQL) all commit, and its audit chain verifies', async () => {
    const ctx: OperationContext = { tenantId: `many-c-${run}`, actor: { id: 'user:importer' } };
    const batches = [0, 1, 2].map((b) => Array.from({ length: 15 }, (_, i) => item(ctx, `b${b}-${i}`, i % 3 === 0 ? CredentialType.OAUTH_ACCESS_TOKEN : CredentialType.API_KEY)));
    const results = await Promise.all(batches.map((b) => service.storeMany(b)));
    expect(results.flat().every((r) => r.credential)).toBe(true);
    expect(await rowsOf(ctx.tenantId, 'cv_credentials')).toBe(45);
    expect(await storeRows(ctx.tenantId)).toBe(45);
    expect(await audit.verify({ tenantId: ctx.tenantId })).toMatchObject({ valid: true });
  });

  it('a failure in the middle of the batch transaction leaves nothing of the batch; its slots stay free', async () => {
    const ctx: OperationContext = { tenantId: `many-d-${run}`, actor: { id: 'user:importer' } };
    const items = Array.from({ length: 6 }, (_, i) => item(ctx, `f${i}`, i % 2 ? CredentialType.OAUTH_ACCESS_TOKEN : CredentialType.API_KEY));
    // The caller's own rows fail after the batch's rows were written.
    await expect(service.storeMany(items, { inCommit: () => Promise.reject(new Error('the caller’s rows failed')) })).rejects.toThrow('the caller’s rows failed');
    // A concurrent store takes item 3's slot between the batch's existence check and its commit: the
    // unique index fails the batch's INSERT in the middle.
    const racer = { ...items[3].input, value: secret() };
    let raced = false;
    await expect(
      service.storeMany(items, {
        valueWrite: async (write) => {
          const pointer = await write();
          if (!raced) {
            raced = true;
            await service.store(ctx, racer);
          }
          return pointer;
        },
      }),
    ).rejects.toThrow();
    for (const table of ['cv_credentials', 'cv_credential_versions']) expect(await rowsOf(ctx.tenantId, table)).toBe(1);
    // The failed batches' envelope values (written before the transaction) are discarded: only the racer's is referenced.
    expect(await count('SELECT COUNT(*) AS n FROM cv_envelope_values e JOIN cv_credential_versions v ON v.envelope_value_id = e.id WHERE e.tenant_id = ?', [ctx.tenantId])).toBe(1);
    expect(await storeRows(ctx.tenantId)).toBe(1);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_outbox WHERE tenant_id = ?`, [ctx.tenantId])).toBe(1);
    expect(await audit.verify({ tenantId: ctx.tenantId })).toMatchObject({ valid: true });

    const again = await service.storeMany(items);
    expect(again.map((r) => (r.credential ? 'ok' : (r.error as Error).constructor.name))).toEqual(['ok', 'ok', 'ok', 'CredentialAlreadyExistsError', 'ok', 'ok']);
    expect(await rowsOf(ctx.tenantId, 'cv_credentials')).toBe(6);
  });

  it('a batch that lost a slot to a concurrent store leaves none of its values live: no enabled vault version, no ciphertext', async () => {
    const ctx: OperationContext = { tenantId: `many-l-${run}`, actor: { id: 'user:importer' } };
    const items = [item(ctx, 'lost', CredentialType.API_KEY, ValueStoreKind.VAULT), item(ctx, 'lost', CredentialType.OAUTH_ACCESS_TOKEN, ValueStoreKind.ENVELOPE), item(ctx, 'free')];
    const batchValues = new Set(items.map((i) => i.input.value));
    // Concurrent stores (another replica) take the first two slots after the batch's existence check, before its own
    // value writes: the batch's vault version is then the latest of the slot's one secret, which the winner also uses.
    let racers: Promise<unknown> | undefined;
    const race = () => (racers ??= (async () => {
      for (const i of items.slice(0, 2)) await service.store(ctx, { ...i.input, value: secret() });
    })());
    await expect(service.storeMany(items, { valueWrite: async (write) => (await race(), write()) })).rejects.toThrow();
    expect(await rowsOf(ctx.tenantId, 'cv_credentials')).toBe(2);
    expect(await enabledIn(batchValues)).toEqual([]);
    expect(await count(orphans, [ctx.tenantId])).toBe(0);
  });

  it('the group-mates `together` drops after a failed value write leave none of their values live; the rest commits', async () => {
    const ctx: OperationContext = { tenantId: `many-t-${run}`, actor: { id: 'user:importer' } };
    // Connection g1: a Key Vault field, the field whose write fails, an envelope field. Connection g2 commits.
    const items = [
      item(ctx, 'g1', CredentialType.API_KEY, ValueStoreKind.VAULT),
      item(ctx, 'g1', CredentialType.CUSTOM_SECRET),
      item(ctx, 'g1', CredentialType.OAUTH_ACCESS_TOKEN, ValueStoreKind.ENVELOPE),
      item(ctx, 'g2'),
    ];
    const dropped = new Set([items[0], items[2]].map((i) => i.input.value));
    // The value writes start in item order: the second one (item 1's) fails without writing.
    let calls = 0;
    const results = await service.storeMany(items, {
      together: (i) => items[i].input.connectionId,
      valueWrite: async (write) => (++calls === 2 ? Promise.reject(new Error('vault unavailable')) : write()),
    });
    expect(results.map((r) => (r.credential ? 'ok' : (r.error as Error).message))).toEqual(['vault unavailable', 'vault unavailable', 'vault unavailable', 'ok']);
    expect(await rowsOf(ctx.tenantId, 'cv_credentials')).toBe(1);
    expect(await enabledIn(dropped)).toEqual([]);
    expect(await count(orphans, [ctx.tenantId])).toBe(0);
    expect((await service.get(ctx, results[3].credential!.id)).value).toBe(items[3].input.value);
  });

  it('`withhold` sees the refused items before any value write and keeps the mates of the keys it names out: not written, not committed, not audited', async () => {
    const ctx: OperationContext = { tenantId: `many-w-${run}`, actor: { id: 'user:importer' } };
    const taken = await service.store(ctx, item(ctx, 'w1', CredentialType.API_KEY).input);
    // Connection w1: its API key's slot is taken, its access token is new. Connection w2 commits.
    const items = [item(ctx, 'w1', CredentialType.API_KEY), item(ctx, 'w1', CredentialType.OAUTH_ACCESS_TOKEN), item(ctx, 'w2')];
    const reason = new Error('withheld by the caller');
    let writes = 0;
    let seen: { index: number; error: unknown }[] = [];
    const results = await service.storeMany(items, {
      together: (i) => items[i].input.connectionId,
      valueWrite: (write) => (writes++, write()),
      withhold: async (refused) => {
        seen = refused;
        return new Map([['w1', reason]]);
      },
    });
    expect(seen.map((r) => [r.index, (r.error as CredentialAlreadyExistsError).existingId])).toEqual([[0, taken.id]]);
    expect(results[0].error).toBeInstanceOf(CredentialAlreadyExistsError);
    expect(results[1].error).toBe(reason);
    expect(results[2].credential).toBeDefined();
    expect(writes).toBe(1); // w2's only
    expect(await rowsOf(ctx.tenantId, 'cv_credentials')).toBe(2);
    // The refused store is audited as before; the withheld one is not a failed store.
    expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = ? AND action = ? AND result <> 'success'`, [ctx.tenantId, AuditAction.STORE])).toBe(1);
    await expect(service.storeMany(items, { withhold: async () => new Map() })).rejects.toBeInstanceOf(CredentialValidationError);
  });

  it('a `withhold` that rejects fails the batch, nothing written, and the refused items are still audited as failed stores', async () => {
    const ctx: OperationContext = { tenantId: `many-r-${run}`, actor: { id: 'user:importer' } };
    const taken = await service.store(ctx, item(ctx, 'r1', CredentialType.API_KEY).input);
    const items = [item(ctx, 'r1', CredentialType.API_KEY), item(ctx, 'r1', CredentialType.OAUTH_ACCESS_TOKEN), item(ctx, 'r2')];
    let writes = 0;
    const broken = new Error('the caller could not settle the refused items');
    await expect(
      service.storeMany(items, {
        together: (i) => items[i].input.connectionId,
        valueWrite: (write) => (writes++, write()),
        withhold: () => Promise.reject(broken),
      }),
    ).rejects.toBe(broken);
    expect(writes).toBe(0);
    expect(await rowsOf(ctx.tenantId, 'cv_credentials')).toBe(1);
    // The refused store (its slot taken) owes its failed STORE row as without `withhold`: one, naming the slot's error.
    const failed = await ds.query(
      kind === 'postgres'
        ? `SELECT error_code FROM cv_audit_log WHERE tenant_id = $1 AND action = $2 AND result <> 'success'`
        : `SELECT error_code FROM cv_audit_log WHERE tenant_id = ? AND action = ? AND result <> 'success'`,
      [ctx.tenantId, AuditAction.STORE],
    );
    expect(failed.map((r: { error_code: string }) => r.error_code)).toEqual([auditErrorCode(new CredentialAlreadyExistsError(taken.id))]);
    expect(await audit.verify({ tenantId: ctx.tenantId })).toMatchObject({ valid: true });
  });

  it("an item's ctx.signal drops its value write not sent yet (CANCELLED, audited cancelled) and its `together` mates' written values", async () => {
    const controller = new AbortController();
    const ctx: OperationContext = { tenantId: `many-s-${run}`, actor: { id: 'user:importer' }, signal: controller.signal };
    // Connection s1: a value written, then the caller leaves before the others are sent. Connection s2: not sent either.
    const items = [item(ctx, 's1', CredentialType.API_KEY, ValueStoreKind.VAULT), item(ctx, 's1', CredentialType.CUSTOM_SECRET), item(ctx, 's2')];
    let calls = 0;
    let firstDone!: () => void;
    const first = new Promise<void>((r) => (firstDone = r));
    const results = await service.storeMany(items, {
      together: (i) => items[i].input.connectionId,
      valueWrite: async (write) => {
        if (++calls > 1) return first.then(write);
        try {
          return await write();
        } finally {
          controller.abort();
          firstDone();
        }
      },
    });
    expect(results.map((r) => (r.error as { code?: unknown } | undefined)?.code)).toEqual([KeyVaultErrorCode.CANCELLED, KeyVaultErrorCode.CANCELLED, KeyVaultErrorCode.CANCELLED]);
    expect(await rowsOf(ctx.tenantId, 'cv_credentials')).toBe(0);
    expect(await enabledIn(new Set(items.map((i) => i.input.value)))).toEqual([]);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = ? AND action = ? AND result = 'cancelled'`, [ctx.tenantId, AuditAction.STORE])).toBe(3);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = ? AND action = ? AND result = 'failure'`, [ctx.tenantId, AuditAction.STORE])).toBe(0);
  });

  it('verifyValue stops promptly with CANCELLED when the caller\'s signal aborts while the vault read is slow', async () => {
    const stored = await service.store(ctxB, item(ctxB, 'verify-slow', CredentialType.API_KEY, ValueStoreKind.VAULT).input);
    emu.injectFault({ kind: 'latency', latencyMs: 5_000, count: 1, operations: ['getSecret'] });
    const started = Date.now();
    const left = await rejection(service.verifyValue({ ...ctxB, signal: AbortSignal.timeout(200) }, stored.id, 'irrelevant'));
    expect(left).toMatchObject({ code: KeyVaultErrorCode.CANCELLED });
    expect(Date.now() - started).toBeLessThan(2_000);
  }, 20_000);

  const orphans = `SELECT COUNT(*) AS n FROM cv_envelope_values e WHERE e.tenant_id = ? AND NOT EXISTS (SELECT 1 FROM cv_credentials c WHERE c.id = e.credential_id)`;
  /** Those of `values` that are the value of an enabled version in the vault. */
  const enabledIn = async (values: Set<string>) => {
    const secrets = emulatorSecretClient(emu);
    const enabled: string[] = [];
    for await (const s of secrets.listPropertiesOfSecrets()) {
      for await (const v of secrets.listPropertiesOfSecretVersions(s.name)) {
        if (v.enabled) enabled.push((await secrets.getSecret(v.name, { version: v.version })).value ?? '');
      }
    }
    return enabled.filter((v) => values.has(v));
  };

  it("a batch's envelope values are written a few at a time, so none waits past the database's transaction limit (LockTimeoutError under load)", async () => {
    let inFlight = 0;
    let most = 0;
    const write = EnvelopeValueStore.prototype.write;
    jest.spyOn(EnvelopeValueStore.prototype, 'write').mockImplementation(async function (this: EnvelopeValueStore, ...args) {
      most = Math.max(most, ++inFlight);
      try {
        return await write.apply(this, args);
      } finally {
        inFlight--;
      }
    });
    try {
      const items = Array.from({ length: 120 }, (_, i) => item(ctxA, `env-${i}`, CredentialType.CUSTOM_SECRET, ValueStoreKind.ENVELOPE));
      const results = await service.storeMany(items);
      expect(results.filter((r) => r.credential === undefined).map((r) => r.error)).toEqual([]);
      expect(most).toBeLessThanOrEqual(8);
      expect(await rowsOf(ctxA.tenantId, 'cv_envelope_values')).toBeGreaterThanOrEqual(120);
    } finally {
      jest.restoreAllMocks();
    }
  });

  it("the envelope values still in the batch's queue when a `together` mate's write fails are never written; other groups' are", async () => {
    const ctx: OperationContext = { tenantId: `many-g-${run}`, actor: { id: 'user:importer' } };
    // Group g: 12 envelope values, 8 sent at once and the first refused; group h's value waits behind them.
    const items = Array.from({ length: 13 }, (_, i) => item(ctx, `e${i}`, CredentialType.CUSTOM_SECRET, ValueStoreKind.ENVELOPE));
    const written = envelopeValuesWritten();
    try {
      let calls = 0;
      const results = await service.storeMany(items, {
        together: (i) => (i < 12 ? 'g' : 'h'),
        valueWrite: async (w) => (++calls === 1 ? Promise.reject(new Error('vault unavailable')) : w()),
      });
      expect(results.map((r) => (r.credential ? 'ok' : (r.error as Error).message))).toEqual([...Array(12).fill('vault unavailable'), 'ok']);
      // The 7 sent beside the refused one were written (then discarded); the 4 queued behind them never were.
      expect(written.filter((v) => items.slice(0, 12).some((i) => i.input.value === v))).toHaveLength(7);
      expect(written).toContain(items[12].input.value);
      expect(await count(orphans, [ctx.tenantId])).toBe(0);
      expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = ? AND action = ? AND result = 'failure'`, [ctx.tenantId, AuditAction.STORE])).toBe(12);
    } finally {
      jest.restoreAllMocks();
    }
  });

  it("values waiting in the caller's valueWrite when a `together` mate's write fails are never written, whatever that valueWrite makes of the refusal", async () => {
    const ctx: OperationContext = { tenantId: `many-k-${run}`, actor: { id: 'user:importer' } };
    const items = Array.from({ length: 5 }, (_, i) => item(ctx, `l${i}`, CredentialType.CUSTOM_SECRET, ValueStoreKind.ENVELOPE));
    const written = envelopeValuesWritten();
    try {
      // A limiter of one write at a time that refuses the first and wraps the failures of the writes it runs.
      let turn: Promise<unknown> = Promise.resolve();
      let calls = 0;
      const valueWrite = <T>(w: () => Promise<T>): Promise<T> => {
        const mine = turn.then(async () => {
          if (++calls === 1) throw new Error('vault unavailable');
          try {
            return await w();
          } catch (e) {
            throw new Error('the limited write failed', { cause: e });
          }
        });
        turn = mine.catch(() => undefined);
        return mine;
      };
      const results = await service.storeMany(items, { together: (i) => (i < 4 ? 'g' : 'h'), valueWrite });
      expect(results.map((r) => (r.credential ? 'ok' : (r.error as Error).message))).toEqual([...Array(4).fill('vault unavailable'), 'ok']);
      expect(written).toEqual([items[4].input.value]);
      expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = ? AND action = ? AND result = 'failure'`, [ctx.tenantId, AuditAction.STORE])).toBe(4);
    } finally {
      jest.restoreAllMocks();
    }
  });

  it("an envelope value still in the batch's queue when its item's ctx.signal aborts is dropped unsent (CANCELLED), not written", async () => {
    const controller = new AbortController();
    const ctx: OperationContext = { tenantId: `many-q-${run}`, actor: { id: 'user:importer' }, signal: controller.signal };
    const write = EnvelopeValueStore.prototype.write;
    // The caller leaves once the first value is written: the 8 sent finish and commit, the 4 queued behind them are never sent.
    jest.spyOn(EnvelopeValueStore.prototype, 'write').mockImplementation(async function (this: EnvelopeValueStore, ...args) {
      try {
        return await write.apply(this, args);
      } finally {
        controller.abort();
      }
    });
    try {
      const items = Array.from({ length: 12 }, (_, i) => item(ctx, `q-${i}`, CredentialType.CUSTOM_SECRET, ValueStoreKind.ENVELOPE));
      const results = await service.storeMany(items);
      expect(results.map((r) => (r.error as { code?: unknown } | undefined)?.code)).toEqual([...Array(8).fill(undefined), ...Array(4).fill(KeyVaultErrorCode.CANCELLED)]);
      expect(await rowsOf(ctx.tenantId, 'cv_envelope_values')).toBe(8);
      expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = ? AND action = ? AND result = 'cancelled'`, [ctx.tenantId, AuditAction.STORE])).toBe(4);
    } finally {
      jest.restoreAllMocks();
    }
  });

  it('refuses a batch that is not an array, and an item twice in one batch', async () => {
    await expect(service.storeMany('nope' as never)).rejects.toBeInstanceOf(CredentialValidationError);
    const twice = item(ctxA, 'twice');
    const r = await service.storeMany([twice, { ...twice, input: { ...twice.input, value: secret() } }]);
    expect(r[0].credential).toBeDefined();
    expect(r[1].error).toBeInstanceOf(CredentialValidationError);
  });

  it('verifyValue compares without returning the value or writing an audit row; a revoked value is refused', async () => {
    const stored = await service.store(ctxB, item(ctxB, 'verify').input);
    const value = (await service.get(ctxB, stored.id)).value;
    await audit.flush();
    const auditRows = await rowsOf(ctxB.tenantId, 'cv_audit_log');
    const same = await service.verifyValue(ctxB, stored.id, value);
    const other = await service.verifyValue(ctxB, stored.id, `${value}x`);
    expect(same).toEqual({ matches: true, metadata: expect.objectContaining({ id: stored.id }) });
    expect(other.matches).toBe(false);
    expect(JSON.stringify(same)).not.toContain(value);
    await audit.flush();
    expect(await rowsOf(ctxB.tenantId, 'cv_audit_log')).toBe(auditRows);
    await service.revoke(ctxB, stored.id);
    await expect(service.verifyValue(ctxB, stored.id, value)).rejects.toBeInstanceOf(CredentialRevokedError);
  });
});
