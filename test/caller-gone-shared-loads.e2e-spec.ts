import { createHash, randomBytes } from 'node:crypto';
import { AuditService } from '@app/audit';
import { CredentialCache } from '@app/credentials';
import { KeysService } from '@app/keys';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { EmbeddedVault } from '../apps/api/src/vault/embedded-vault';
import { LeavingCallers, metricSum } from './support/caller-gone';
import { startTestHost, TestHost } from './support/host';

const TENANT = 'gone-shared';
/** Distinct cold entries (credentials, keys), each read by LEAVERS callers who leave after DEADLINE_MS. */
const ENTRIES = 200;
const LEAVERS = 2;
/**
 * The vault answers each read of a value or a key in VAULT_LATENCY_MS; its bulkhead runs 64 calls at a time, so the
 * loads past the first 64 wait for a slot until after every caller has left (at DEADLINE_MS).
 */
const VAULT_LATENCY_MS = 2_000;
const DEADLINE_MS = 1_000;
/**
 * Vault reads the flood may make (as the vault counts them): the shared loads of entries whose callers have all
 * left are dropped while queued (aborted in flight, they still reach the vault: at most the bulkhead's 64 and the
 * live readers'). Measured: 42 values, 44 keys; without it one per entry (200 and 203), nearly all after every
 * caller of the entry had left.
 */
const USABLE_BOUND = ENTRIES / 2;
/** The first load of an entry: slow enough that its callers leave (at DEADLINE_MS) and a live reader comes long before it ends. */
const SLOW_LOAD_MS = 8_000;

const b64u = (b: Buffer) => b.toString('base64url');
const digest = () => b64u(createHash('sha256').update(randomBytes(8)).digest());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Shared loads (the credentials cache's single-flight value load, the keys lib's cold key lookup) with callers who
 * leave: each caller stops waiting when it leaves; the load itself is dropped or aborted once all its callers have
 * left, never while one is still there, and a caller who comes after they all left gets a load of its own.
 */
describe('callers who left shared loads (cold cache entries, cold keys)', () => {
  let host: TestHost;
  let callers: LeavingCallers;
  const user = generateApiKey('gone-shared-user', TENANT, ['keys:read', 'keys:write', 'keys:use', 'credentials:read', 'credentials:write', 'credentials:read-value']);
  const vault = () => host.app.get(EmbeddedVault).emulator!;
  const http = (method: string, path: string, body?: unknown) =>
    fetch(`${host.baseUrl}${path}`, {
      method,
      headers: { 'x-api-key': user.key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const leaving = (method: string, path: string, body?: unknown) => callers.send(method, path, body, AbortSignal.timeout(DEADLINE_MS));
  const metric = (line: RegExp) => metricSum(host.baseUrl, line);
  const vaultReads = (operation: string) => vault().stats().byOperation[operation] ?? 0;
  const auditRows = async (filter: (r: { action: string; resource: string | null }) => boolean) => {
    const audit = host.app.get(AuditService);
    await audit.flush();
    const rows = [];
    for (let cursor: string | undefined; ; ) {
      const page = await audit.query({ tenantId: TENANT, limit: 500, cursor });
      rows.push(...page.items.filter(filter));
      if (!page.nextCursor) return rows;
      cursor = page.nextCursor;
    }
  };
  /** `count` calls of `create`, 20 at a time. */
  const createMany = async <T>(count: number, create: (i: number) => Promise<T>): Promise<T[]> => {
    const out: T[] = [];
    for (let i = 0; i < count; i += 20) out.push(...(await Promise.all(Array.from({ length: Math.min(20, count - i) }, (_, j) => create(i + j)))));
    return out;
  };
  const createCredential = async (connectionId: string) => {
    const value = `v-${randomBytes(12).toString('hex')}`;
    const res = await http('POST', '/v1/credentials', { integrationId: 'github', connectionId, type: 'api_key', value });
    expect(res.status).toBe(201);
    return { id: ((await res.json()) as { id: string }).id, value };
  };
  const createKey = async (name: string) => {
    expect((await http('POST', '/v1/keys', { name, type: 'EC' })).status).toBe(201);
    return name;
  };
  const readValue = async (id: string) => ((await (await http('GET', `/v1/credentials/${id}/value`)).json()) as { value?: string }).value;
  const sign = async (name: string) => (await http('POST', `/v1/keys/${name}/sign`, { algorithm: 'ES256', digest: digest() })).status;

  beforeAll(async () => {
    host = await startTestHost('sqlite', { AUTH_API_KEYS: JSON.stringify([user.entry]), RATE_LIMIT_PER_MINUTE: '100000', KEY_VAULT_MAX_ATTEMPTS: '1' });
    callers = new LeavingCallers(host.baseUrl, { 'x-api-key': user.key });
  }, 60_000);

  afterAll(async () => {
    vault()?.clearFaults();
    callers?.close();
    await host?.close();
  });

  afterEach(() => vault().clearFaults());

  it('credentials: leaving readers of many cold values make few vault reads and audit no failure; live readers of the same values get them', async () => {
    const creds = await createMany(ENTRIES, (i) => createCredential(`flood.${i}`));
    host.app.get(CredentialCache).clear();
    vault().resetStats();
    vault().injectFault({ kind: 'latency', latencyMs: VAULT_LATENCY_MS, operations: ['getSecret'] });

    const flood = creds.flatMap(({ id }) => Array.from({ length: LEAVERS }, () => leaving('GET', `/v1/credentials/${id}/value`)));
    // Live readers of three of the flooded values, sharing their loads with readers who leave.
    const live = [0, ENTRIES / 2, ENTRIES - 1].map((i) => readValue(creds[i].id));
    expect((await Promise.all(flood)).filter((s) => s === 'AbortError').length).toBeGreaterThan(ENTRIES * LEAVERS * 0.9);
    expect(await Promise.all(live)).toEqual([creds[0].value, creds[ENTRIES / 2].value, creds[ENTRIES - 1].value]);

    // Let every load still running in the host end, then count what reached the vault.
    await sleep(3 * VAULT_LATENCY_MS + 500);
    const sent = vaultReads('getSecret');
    expect(sent).toBeLessThan(USABLE_BOUND);
    expect(sent).toBeGreaterThanOrEqual(3);
    expect(await metric(/^credential_vault_keyvault_errors_total\{code="(CANCELLED|TIMEOUT|SERVICE_UNAVAILABLE|BULKHEAD_FULL|UNKNOWN)"\}/)).toBe(0);
    // Every value served has its row; the readers who left have none, or a `cancelled` one: never a failure.
    const ids = new Set(creds.map((c) => c.id));
    const reads = await auditRows((r) => r.action === 'read' && ids.has(r.resource ?? ''));
    expect(reads.filter((r) => r.result === 'success').length).toBeGreaterThanOrEqual(3);
    expect(reads.filter((r) => r.result !== 'success' && r.result !== 'cancelled')).toEqual([]);
    // Nothing cancelled was cached: every value reads back.
    vault().clearFaults();
    expect(await readValue(creds[1].id)).toBe(creds[1].value);
  }, 120_000);

  it('keys: leaving signers on many cold keys make few key lookups and audit no failure; live signers on the same keys sign', async () => {
    // Set-up: Azure lets a vault create 20 keys per 10 s (so does the local one); these 200 are made at once.
    vault().setThrottle(false);
    const keys = await createMany(ENTRIES, (i) => createKey(`flood-${i}`)).finally(() => vault().setThrottle(undefined));
    host.app.get(KeysService).clearCache();
    vault().resetStats();
    vault().injectFault({ kind: 'latency', latencyMs: VAULT_LATENCY_MS, operations: ['getKey'] });

    const flood = keys.flatMap((name) => Array.from({ length: LEAVERS }, () => leaving('POST', `/v1/keys/${name}/sign`, { algorithm: 'ES256', digest: digest() })));
    const live = [0, ENTRIES / 2, ENTRIES - 1].map((i) => sign(keys[i]));
    expect((await Promise.all(flood)).filter((s) => s === 'AbortError').length).toBeGreaterThan(ENTRIES * LEAVERS * 0.9);
    expect(await Promise.all(live)).toEqual([200, 200, 200]);

    await sleep(3 * VAULT_LATENCY_MS + 500);
    const looked = vaultReads('getKey');
    expect(looked).toBeLessThan(USABLE_BOUND);
    expect(looked).toBeGreaterThanOrEqual(3);
    expect(await metric(/^credential_vault_keyvault_errors_total\{code="(CANCELLED|TIMEOUT|SERVICE_UNAVAILABLE|BULKHEAD_FULL|UNKNOWN)"\}/)).toBe(0);
    const names = new Set(keys.map((k) => `key:${k}`));
    const rows = await auditRows((r) => r.action === 'key.sign' && names.has(r.resource ?? ''));
    expect(rows.filter((r) => r.result === 'success').length).toBeGreaterThanOrEqual(3);
    expect(rows.filter((r) => r.result !== 'success' && r.result !== 'cancelled')).toEqual([]);
    vault().clearFaults();
    expect(await sign(keys[1])).toBe(200);
  }, 120_000);

  it('a live reader who comes after every earlier reader of a load left gets a load of its own, and the value', async () => {
    const cred = await createCredential('joined-late');
    const key = await createKey('joined-late');
    host.app.get(CredentialCache).clear();
    host.app.get(KeysService).clearCache();
    const cancelled = (operation: string) => metric(new RegExp(`^credential_vault_keyvault_cancelled_total\\{operation="${operation}"`));
    const before = { getSecret: await cancelled('getSecret'), getKey: await cancelled('getKey') };
    // Only the first load of each is slow: the reader who comes later is answered at once unless it joins that one.
    vault().injectFault({ kind: 'latency', latencyMs: SLOW_LOAD_MS, operations: ['getSecret'], count: 1 });
    vault().injectFault({ kind: 'latency', latencyMs: SLOW_LOAD_MS, operations: ['getKey'], count: 1 });

    const left = await Promise.all([
      ...Array.from({ length: 3 }, () => leaving('GET', `/v1/credentials/${cred.id}/value`)),
      ...Array.from({ length: 3 }, () => leaving('POST', `/v1/keys/${key}/sign`, { algorithm: 'ES256', digest: digest() })),
    ]);
    expect(left).toEqual(Array(6).fill('AbortError'));
    // Long before the first loads would have ended: a reader now must not join them (all their callers left).
    await sleep(500);
    const [value, signed] = await Promise.all([readValue(cred.id), sign(key)]);
    expect(value).toBe(cred.value);
    expect(signed).toBe(200);
    // The abandoned loads were cancelled in the vault (not left to run for nobody).
    expect(await cancelled('getSecret')).toBeGreaterThan(before.getSecret);
    expect(await cancelled('getKey')).toBeGreaterThan(before.getKey);
  }, 60_000);
});
