/**
 * Integration: the Key Vault anchor store, provided globally as an embedding app does (the provider its
 * JSDoc shows), against the local Key Vault emulator over real HTTPS.
 */
import { Global, Module, type Logger } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { CredentialVaultError, ErrorSeverity } from '@app/common';
import { AUDIT_ERROR_HTTP_STATUS, AuditAnchorDamagedError, AuditAnchorStore, AuditAnchorUnavailableError, AuditErrorCode, AuditService, type AuditAnchor } from '@app/audit';
import { KeyVaultModule, KeyVaultProvider } from '@app/key-vault';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, emulatorKeyVaultOptions, type TestDatabase } from '@app/testing';
// The lib's public entry: an embedding app branches on the error by its class or its stable code.
import { AuditAnchorStoreError, auditAnchorSecretName, CREDENTIAL_ERROR_HTTP_STATUS, CredentialErrorCode, KeyVaultAuditAnchorStore } from '../index';

@Global()
@Module({
  providers: [{ provide: AuditAnchorStore, inject: [KeyVaultProvider], useFactory: (kv: KeyVaultProvider) => new KeyVaultAuditAnchorStore(kv) }],
  exports: [AuditAnchorStore],
})
class AnchorStoreModule {}

const hash = (c: string) => c.repeat(64);
const anchor = (tenantId: string, sequence: number, h = hash('a'), at = '2026-12-01T10:00:00.000Z'): AuditAnchor => ({
  tenantId,
  sequence,
  hash: h,
  anchoredAt: new Date(at),
});

/** What `p` rejects with (a resolved value fails the `toBeInstanceOf` checks below). */
const rejection = (p: Promise<unknown>) => p.then((v) => v as Error, (e: Error) => e);

/** A typed error with its stable code, like every other error of the libs: never retried, a 500 if it reaches HTTP. */
function expectUnusableAnchor(e: unknown): void {
  expect(e).toBeInstanceOf(AuditAnchorStoreError);
  expect(e).toBeInstanceOf(CredentialVaultError);
  expect(e).toMatchObject({ code: 2011, codeName: 'AUDIT_ANCHOR_UNUSABLE', severity: ErrorSeverity.FATAL, retryable: false });
  expect(CREDENTIAL_ERROR_HTTP_STATUS[CredentialErrorCode.AUDIT_ANCHOR_UNUSABLE]).toBe(500);
}

describe('KeyVaultAuditAnchorStore against the local Key Vault', () => {
  let vault: KeyVaultEmulator;
  let moduleRef: TestingModule;
  let store: AuditAnchorStore;
  let kv: KeyVaultProvider;

  beforeAll(async () => {
    vault = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 }); // deletes, recovers and purges anchors
    moduleRef = await Test.createTestingModule({
      imports: [
        KeyVaultModule.forRoot({
          ...emulatorKeyVaultOptions(vault, { resilience: { initialDelayMs: 20, maxDelayMs: 500, pollIntervalMs: 50 } }),
          isGlobal: true,
        }),
        AnchorStoreModule,
      ],
    }).compile();
    store = moduleRef.get(AuditAnchorStore);
    kv = moduleRef.get(KeyVaultProvider);
  });
  afterAll(async () => {
    await moduleRef?.close();
    await vault?.stop();
  });

  it('is the Key Vault store, provided globally under the AuditAnchorStore token', () => {
    expect(store).toBeInstanceOf(KeyVaultAuditAnchorStore);
  });

  it('round-trips an anchor as a JSON secret tagged as an anchor', async () => {
    await store.write(anchor('acme', 7, hash('b')));
    expect(await store.read('acme')).toEqual(anchor('acme', 7, hash('b')));

    const name = auditAnchorSecretName('acme');
    expect(name).toMatch(/^cv-audit-anchor-[0-9a-f]{40}$/);
    const secret = await kv.getSecret(name);
    expect(JSON.parse(secret.value)).toEqual({ tenantId: 'acme', sequence: 7, hash: hash('b'), anchoredAt: '2026-12-01T10:00:00.000Z' });
    expect(secret.properties).toMatchObject({ contentType: 'application/json', tags: { purpose: 'cv-audit-anchor', tenantId: 'acme' } });
    // How far retention pruned travels with it.
    await store.write({ ...anchor('pruned', 9, hash('c')), prunedThrough: 4 });
    expect(await store.read('pruned')).toEqual({ ...anchor('pruned', 9, hash('c')), prunedThrough: 4 });
  });

  it('returns the latest anchor, and keeps the earlier ones as versions', async () => {
    await store.write(anchor('latest', 1, hash('1')));
    await store.write(anchor('latest', 5, hash('5'), '2026-12-01T10:05:00.000Z'));
    await store.write(anchor('latest', 9, hash('9'), '2026-12-01T10:10:00.000Z'));
    expect(await store.read('latest')).toEqual(anchor('latest', 9, hash('9'), '2026-12-01T10:10:00.000Z'));
    const versions: string[] = [];
    for await (const v of kv.listAllSecretVersions(auditAnchorSecretName('latest'))) versions.push(v.version);
    expect(versions).toHaveLength(3);
  });

  it('returns null for a tenant that was never anchored', async () => {
    expect(await store.read('never-anchored')).toBeNull();
  });

  it('anchors tenant ids holding characters Key Vault names refuse, up to 128 characters', async () => {
    const odd = ['Acme Corp/ü:1', 'tenant_with.dots@x', 'a'.repeat(128)];
    for (const [i, t] of odd.entries()) await store.write(anchor(t, i + 1));
    for (const [i, t] of odd.entries()) expect(await store.read(t)).toEqual(anchor(t, i + 1));
    expect(await store.tenants()).toEqual(expect.arrayContaining(odd));
    // Different ids never share a secret, even when they differ only in case.
    await store.write(anchor('ACME', 3));
    expect((await store.read('acme'))?.sequence).toBe(7);
  });

  it('lists only tenants with an anchor, across pages, ignoring other secrets of the vault', async () => {
    await kv.setSecret('cv--unrelated--github--k--c1--g0', 'not-an-anchor', { tags: { tenantId: 'intruder' } });
    await kv.setSecret('look-alike', '{}', { tags: { purpose: 'cv-audit-anchor', tenantId: 'look-alike' } });
    const many = Array.from({ length: 30 }, (_, i) => `paged-${i}`);
    await Promise.all(many.map((t) => store.write(anchor(t, 1))));
    const tenants = await store.tenants();
    expect(tenants).toEqual(expect.arrayContaining(['acme', 'latest', ...many]));
    expect(tenants).not.toContain('intruder');
    expect(tenants).not.toContain('look-alike');
    expect(tenants).not.toContain('never-anchored');
    expect(new Set(tenants).size).toBe(tenants.length);
  });

  it('keeps a tenant listed when its tenantId tag was edited, taking the id from the value', async () => {
    await store.write(anchor('retagged', 2));
    const { properties } = await kv.getSecret(auditAnchorSecretName('retagged'));
    await kv.updateSecretProperties(properties.name, properties.version, { tags: { purpose: 'cv-audit-anchor', tenantId: 'someone-else' } });
    const tenants = await store.tenants();
    expect(tenants).toContain('retagged');
    expect(tenants).not.toContain('someone-else');
  });

  /** The store's warning lines while `work` runs. */
  async function warnings(work: () => Promise<void>): Promise<string[]> {
    const warn = jest.spyOn((store as unknown as { logger: Logger }).logger, 'warn').mockImplementation(() => undefined);
    try {
      await work();
      return warn.mock.calls.map((c) => String(c[0]));
    } finally {
      warn.mockRestore();
    }
  }

  it('rejects a corrupt anchor, never as "no anchor": the error says why, the log line names the secret', async () => {
    const name = auditAnchorSecretName('corrupt');
    await store.write(anchor('corrupt', 4));
    const cases: [string, RegExp][] = [
      ['{"tenantId":"corrupt","sequence":4', /does not hold JSON/],
      ['[1,2]', /does not hold a JSON object/],
      [JSON.stringify({ tenantId: 'corrupt', sequence: -1, hash: hash('a'), anchoredAt: '2026-12-01T10:00:00Z' }), /sequence/],
      [JSON.stringify({ tenantId: 'corrupt', sequence: 4, hash: 'abc', anchoredAt: '2026-12-01T10:00:00Z' }), /hash/],
      [JSON.stringify({ tenantId: 'corrupt', sequence: 4, hash: hash('a'), anchoredAt: 'yesterday' }), /anchoredAt/],
      [JSON.stringify({ tenantId: 'corrupt', sequence: 4, hash: hash('a'), anchoredAt: '2026-12-01T10:00:00Z', prunedThrough: 4 }), /prunedThrough/],
      // A copy of another tenant's anchor put in this tenant's place.
      [JSON.stringify({ tenantId: 'acme', sequence: 4, hash: hash('a'), anchoredAt: '2026-12-01T10:00:00Z' }), /another tenant/],
    ];
    for (const [value, why] of cases) {
      await kv.setSecret(name, value, { tags: { purpose: 'cv-audit-anchor', tenantId: 'corrupt' } });
      let e: Error | undefined;
      const logged = await warnings(async () => void (e = await rejection(store.read('corrupt'))));
      expectUnusableAnchor(e);
      // The message reaches API clients (verify): the secret's name (a hash of the tenant id) stays in the log.
      expect(e!.message).toMatch(/^The audit anchor of tenant corrupt .*the anchor is corrupt$/);
      expect(e!.message).toMatch(why);
      expect(e!.message).not.toContain(name);
      expect(logged).toEqual([expect.stringContaining(`"${name}"`)]);
      expect(logged[0]).toMatch(why);
    }
  });

  it('refuses to write an invalid anchor', async () => {
    expectUnusableAnchor(await rejection(store.write(anchor('bad', 1, 'not-a-hash'))));
    await expect(store.write(anchor('bad', 1, 'not-a-hash'))).rejects.toThrow(/hash must be 64 lowercase hex/);
    await expect(store.write(anchor('bad', 1.5))).rejects.toThrow(/sequence/);
    await expect(store.write(anchor('x'.repeat(129), 1))).rejects.toThrow(/tenantId/);
    expect(await store.read('bad')).toBeNull();
  });

  it('fails on a soft-deleted anchor (read and write) until it is recovered or purged', async () => {
    await store.write(anchor('deleted', 12));
    const name = auditAnchorSecretName('deleted');
    await kv.deleteSecret(name);

    let onRead: Error | undefined;
    const logged = await warnings(async () => void (onRead = await rejection(store.read('deleted'))));
    expectUnusableAnchor(onRead);
    expect(onRead!.message).toMatch(/anchor of tenant deleted was deleted on \d{4}-.*recover it .* or purge it/);
    expect(onRead!.message).not.toContain(name);
    expect(logged).toEqual([expect.stringMatching(new RegExp(`"${name}" was deleted on \\d{4}-.*soft-deleted`))]);
    const onWrite = await rejection(store.write(anchor('deleted', 13)));
    expectUnusableAnchor(onWrite);
    expect(onWrite.message).toMatch(/was deleted/);
    expect(onWrite.message).not.toContain(name);
    expect(await store.tenants()).not.toContain('deleted');

    await kv.recoverDeletedSecret(name);
    expect((await store.read('deleted'))?.sequence).toBe(12);

    // Purged: indistinguishable from never anchored.
    await kv.deleteSecret(name);
    await kv.purgeDeletedSecret(name);
    expect(await store.read('deleted')).toBeNull();
    await store.write(anchor('deleted', 13));
    expect((await store.read('deleted'))?.sequence).toBe(13);
  });

  it('lets a disabled anchor fail loudly rather than read as missing', async () => {
    await store.write(anchor('disabled', 3));
    const { properties } = await kv.getSecret(auditAnchorSecretName('disabled'));
    await kv.updateSecretProperties(properties.name, properties.version, { enabled: false });
    await expect(store.read('disabled')).rejects.toMatchObject({ codeName: 'DISABLED' });
  });

  it('keeps deployments with another name prefix apart in a shared vault', async () => {
    const staging = new KeyVaultAuditAnchorStore(kv, 'stg');
    await staging.write(anchor('acme', 100));
    expect(auditAnchorSecretName('acme', 'stg')).toMatch(/^stg-audit-anchor-/);
    expect((await staging.read('acme'))?.sequence).toBe(100);
    expect((await store.read('acme'))?.sequence).toBe(7);
    expect(await staging.tenants()).toEqual(['acme']);
  });
});

describe('AuditService.verify over the Key Vault anchor store', () => {
  let vault: KeyVaultEmulator;
  let db: TestDatabase;
  let moduleRef: TestingModule;
  let store: AuditAnchorStore;
  let kv: KeyVaultProvider;
  let audit: AuditService;

  beforeAll(async () => {
    vault = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    db = await createTestDatabase('sqlite');
    moduleRef = await Test.createTestingModule({
      imports: [...credentialsStackImports({ database: db.options, vault, keyVault: { resilience: { maxAttempts: 1 } } }), AnchorStoreModule],
    }).compile();
    store = moduleRef.get(AuditAnchorStore);
    kv = moduleRef.get(KeyVaultProvider);
    audit = moduleRef.get(AuditService);
  });
  afterEach(() => vault.clearFaults());
  afterAll(async () => {
    await moduleRef?.close();
    await vault?.stop();
    await db?.drop();
  });

  /**
   * Retrying will not help, and the anchor may have been tampered with: a typed error of the audit lib that is not
   * transient (not the 503 of a store that is down), naming the store error's stable code but not its secret.
   */
  function expectDamagedAnchor(refused: Error, tenantId: string): void {
    expect(refused).toBeInstanceOf(AuditAnchorDamagedError);
    expect(refused).toMatchObject({ code: 5008, codeName: 'AUDIT_ANCHOR_DAMAGED', severity: ErrorSeverity.FATAL, retryable: false });
    expect(AUDIT_ERROR_HTTP_STATUS[AuditErrorCode.ANCHOR_DAMAGED]).toBe(500);
    expect(refused.message).toContain(`anchor of tenant ${tenantId}`);
    expect(refused.message).toContain('AuditAnchorStoreError(AUDIT_ANCHOR_UNUSABLE)');
    expect(refused.message).not.toContain(auditAnchorSecretName(tenantId));
    expectUnusableAnchor(refused.cause);
  }

  it('refuses to vouch for a chain whose anchor was deleted, as damage an operator must repair, not as a store that is down', async () => {
    await store.write(anchor('gone', 5));
    await kv.deleteSecret(auditAnchorSecretName('gone'));
    expectDamagedAnchor(await rejection(audit.verify({ tenantId: 'gone' })), 'gone');
  });

  it('refuses to vouch for a chain whose anchor holds garbage, as damage an operator must repair', async () => {
    await store.write(anchor('garbled', 5));
    await kv.setSecret(auditAnchorSecretName('garbled'), 'not an anchor {', { tags: { purpose: 'cv-audit-anchor', tenantId: 'garbled' } });
    expectDamagedAnchor(await rejection(audit.verify({ tenantId: 'garbled' })), 'garbled');
  });

  it('refuses to vouch for a chain whose anchor was disabled, as damage', async () => {
    await store.write(anchor('switched-off', 5));
    const { properties } = await kv.getSecret(auditAnchorSecretName('switched-off'));
    await kv.updateSecretProperties(properties.name, properties.version, { enabled: false });
    const refused = await rejection(audit.verify({ tenantId: 'switched-off' }));
    expect(refused).toBeInstanceOf(AuditAnchorDamagedError);
    expect(refused).toMatchObject({ code: 5008, retryable: false, cause: expect.objectContaining({ codeName: 'DISABLED' }) });
  });

  it('still answers a store that is down (the vault answering 503) as transient: retrying later may succeed', async () => {
    vault.injectFault({ kind: 'status', status: 503, operations: ['getSecret'] });
    const refused = await rejection(audit.verify({ tenantId: 'later' }));
    expect(refused).toBeInstanceOf(AuditAnchorUnavailableError);
    expect(refused).toMatchObject({ code: 5006, codeName: 'AUDIT_ANCHOR_UNAVAILABLE', severity: ErrorSeverity.TRANSIENT, retryable: true });
    expect(AUDIT_ERROR_HTTP_STATUS[AuditErrorCode.ANCHOR_UNAVAILABLE]).toBe(503);
    vault.clearFaults();
    // Once the vault answers again, so does verify (this tenant was never anchored).
    await expect(audit.verify({ tenantId: 'later' })).resolves.toMatchObject({ valid: true, anchorsChecked: 0 });
  });

  it('refuses to verify the whole log when an anchor it lists is garbage, as damage', async () => {
    // A tag that does not match its name makes the listing read the tenant from the value.
    await kv.setSecret(auditAnchorSecretName('mangled'), '[]', { tags: { purpose: 'cv-audit-anchor', tenantId: 'someone-else' } });
    const refused = await rejection(audit.verify());
    expect(refused).toBeInstanceOf(AuditAnchorDamagedError);
    expect(refused).toMatchObject({ code: 5008, retryable: false });
    expect(refused.message).not.toContain(auditAnchorSecretName('mangled'));
    expectUnusableAnchor(refused.cause);
  });
});
