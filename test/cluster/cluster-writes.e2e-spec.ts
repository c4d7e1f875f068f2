import { randomBytes } from 'node:crypto';
import { emulatorSecretClient, KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, POSTGRES_URL, TestDatabase } from '@app/testing';
import { Client } from 'pg';
import { generateApiKey } from '../../apps/api/src/auth/api-keys';
import { buildHost, deploymentEnv, HostBuild, Replica, startReplica } from './replicas';

/**
 * Concurrent writes of one thing through different replicas, as clients behind a load balancer make
 * them: three host processes on one PostgreSQL schema, one Redis and one local vault, each request of
 * a race sent to another replica at the same moment. What cluster.e2e-spec.ts does not cover: the
 * compare-and-set answers and what every replica serves right after the race.
 */
jest.setTimeout(180_000);

type Answer = { status: number; body: Record<string, unknown> & { code?: number }; text: string };

describe('cluster: concurrent writes through three replicas', () => {
  let build: HostBuild | undefined;
  let vault: KeyVaultEmulator | undefined;
  let db: TestDatabase | undefined;
  let pg: Client | undefined;
  const replicas: Replica[] = [];
  const apiKey = generateApiKey('writes-app', 'acme', ['credentials:read', 'credentials:read-value', 'credentials:write', 'rotation:read', 'rotation:write', 'keys:read', 'keys:write', 'credentials:revoke']);
  const schema = () => (db!.options as { schema: string }).schema;

  const call = async (r: Replica, method: string, path: string, body?: unknown): Promise<Answer> => {
    const res = await fetch(`${r.url}${path}`, {
      method,
      headers: { 'x-api-key': apiKey.key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : {}, text };
  };
  /** One request per replica, all sent at once; `body(i)` is replica i's. */
  const race = (method: string, path: (i: number) => string, body: (i: number) => unknown) =>
    Promise.all(replicas.map((r, i) => call(r, method, path(i), body(i))));
  /** The answers' statuses and codes, sorted: `['200', '409:2003', '409:2003']`. */
  const outcomes = (answers: Answer[]) => answers.map((a) => (a.body.code ? `${a.status}:${a.body.code}` : String(a.status))).sort();
  const value = (tag: string) => `${tag}_${randomBytes(12).toString('hex')}`;
  /** The values a replica served, read after read, until it serves `expected` (or 1 s has passed). */
  const readUntil = async (r: Replica, id: string, expected: string) => {
    const served: string[] = [];
    for (const deadline = Date.now() + 1000; served[served.length - 1] !== expected && Date.now() < deadline; ) {
      served.push(String((await call(r, 'GET', `/v1/credentials/${id}/value`)).body.value));
    }
    return served;
  };

  beforeAll(async () => {
    [build, vault, db] = await Promise.all([buildHost(), KeyVaultEmulator.start({ quiet: true, throttle: false }), createTestDatabase('postgres')]);
    pg = new Client({ connectionString: POSTGRES_URL });
    await pg.connect();
    const prefix = `cvw:${randomBytes(4).toString('hex')}:`;
    const env = (name: string): Record<string, string> => ({
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'warn',
      SHUTDOWN_DRAIN_MS: '0',
      ...deploymentEnv({ appName: `cv-writes-${name}`, schema: schema(), vault: vault!, redisKeyPrefix: prefix }),
      AUTH_API_KEYS: JSON.stringify([apiKey.entry]),
      RATE_LIMIT_PER_MINUTE: '1000000',
      AUDIT_ANCHOR_ENABLED: 'false',
      AUDIT_RETENTION_ENABLED: 'false',
      OAUTH_PROACTIVE_ENABLED: 'false',
      ROTATION_EXPIRY_MONITOR_ENABLED: 'false',
      // The rotation check runs on all three every 2 s; only the credentials one test ages are ever due.
      ROTATION_CHECK_CRON: '*/2 * * * * *',
      WEBHOOK_SECRET_ROTATION_ENABLED: 'false',
      // Notification settings name a webhook on loopback; nothing is sent to it.
      NOTIFICATIONS_WEBHOOK_ENABLED: 'false',
      NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    });
    // The first one migrates the schema; the two others then start together.
    replicas.push(await startReplica(build, 'a', env('a')));
    replicas.push(...(await Promise.all(['b', 'c'].map((n) => startReplica(build!, n, env(n))))));
  });

  afterAll(async () => {
    for (const r of replicas) process.stdout.write(`[cluster-writes] ${r.name} last output:\n${r.output.slice(-10).map((l) => l.slice(0, 400)).join('\n')}\n`);
    await Promise.allSettled(replicas.map((r) => r.stop()));
    await pg?.end().catch(() => undefined);
    await Promise.allSettled([vault?.stop(), db?.drop()]);
    build?.remove();
  });

  it('rotates and PATCHes of one credential with one expectedVersion: one wins, the others 409 CONFLICT, every replica serves the winner at once', async () => {
    for (let round = 0; round < 3; round++) {
      const stored = await call(replicas[0], 'POST', '/v1/credentials', { integrationId: 'cas', connectionId: `c${round}`, type: 'api_key', valueStore: 'vault', value: value('v1') });
      expect(stored.status).toBe(201);
      const id = stored.body.id as string;
      // Every replica has version 1 cached (value and metadata): the race's winner must replace it everywhere.
      for (const r of replicas) {
        expect((await call(r, 'GET', `/v1/credentials/${id}/value`)).status).toBe(200);
        expect((await call(r, 'GET', `/v1/credentials/${id}`)).status).toBe(200);
      }
      const values = replicas.map(() => value('v2'));
      const rotated = await race('POST', () => `/v1/credentials/${id}/rotate`, (i) => ({ value: values[i], expectedVersion: stored.body.rowVersion }));
      expect(outcomes(rotated)).toEqual(['200', '409:2003', '409:2003']);
      const winner = values[rotated.findIndex((a) => a.status === 200)];
      // Each replica serves the winner's value — at once, or within the fan-out's bound (README: the first read on
      // another replica may race the eviction) — and never a loser's: a refused write left nothing servable.
      const served = await Promise.all(replicas.map((r) => readUntil(r, id, winner)));
      expect(served.flat().filter((v) => v !== winner && values.includes(v))).toEqual([]);
      expect(served.map((reads) => reads[reads.length - 1])).toEqual(replicas.map(() => winner));

      const rowVersion = rotated.find((a) => a.status === 200)!.body.rowVersion as number;
      const patched = await race('PATCH', () => `/v1/credentials/${id}`, (i) => ({ tags: { by: `replica-${i}` }, expectedVersion: rowVersion }));
      expect(outcomes(patched)).toEqual(['200', '409:2003', '409:2003']);
      const tags = patched.find((a) => a.status === 200)!.body.tags;
      const metadata = await Promise.all(replicas.map((r) => call(r, 'GET', `/v1/credentials/${id}`)));
      expect(metadata.map((a) => [a.body.rowVersion, a.body.tags])).toEqual(replicas.map(() => [rowVersion + 1, tags]));
    }
  });

  it('one credential stored at once through three replicas: one 201, two 409 ALREADY_EXISTS, and the refused values are left nowhere servable', async () => {
    const secrets = emulatorSecretClient(vault!);
    for (const [round, valueStore] of ['envelope', 'vault', 'vault'].entries()) {
      const values = replicas.map(() => value('slot'));
      const stored = await race('POST', () => '/v1/credentials', (i) => ({ integrationId: 'slot', connectionId: `s${round}`, type: 'api_key', valueStore, value: values[i] }));
      expect(outcomes(stored)).toEqual(['201', '409:2004', '409:2004']);
      const winner = stored.findIndex((a) => a.status === 201);
      if (valueStore === 'vault') {
        // The losers wrote to the same Key Vault secret (its name comes from tenant, integration, connection and type):
        // every version still enabled there must be the winner's, or a refused value outlives even a revoke of the credential.
        const { rows } = await pg!.query(`SELECT vault_secret_name AS name FROM "${schema()}".cv_credential_versions WHERE credential_id = $1`, [stored[winner].body.id]);
        const enabled: (string | undefined)[] = [];
        for await (const p of secrets.listPropertiesOfSecretVersions(rows[0].name)) if (p.enabled) enabled.push((await secrets.getSecret(p.name, { version: p.version })).value);
        expect(enabled).toEqual([values[winner]]);
      } else {
        // The losers' envelope ciphertexts (under credential ids that were never committed): none left behind.
        const orphans = await pg!.query(
          `SELECT count(*)::int AS n FROM "${schema()}".cv_envelope_values e WHERE NOT EXISTS (SELECT 1 FROM "${schema()}".cv_credentials c WHERE c.id = e.credential_id)`,
        );
        expect(orphans.rows[0].n).toBe(0);
      }
    }
  });

  it('a key created at once through three replicas: one 201, two 409 KEY_ALREADY_EXISTS, and the key is the one answered', async () => {
    for (let round = 0; round < 3; round++) {
      // Key Vault's own create adds a version to an existing key: without exclusion all three would be 201, three versions.
      const created = await race('POST', () => '/v1/keys', (i) => ({ name: `race-${round}`, type: 'EC', curve: (['P-256', 'P-384', 'P-521'] as const)[i] }));
      expect(outcomes(created)).toEqual(['201', '409:10008', '409:10008']);
      const winner = created.find((a) => a.status === 201)!.body;
      const versions = await call(replicas[round], 'GET', `/v1/keys/race-${round}/versions`);
      expect((versions.body.items as { version: string }[]).map((v) => v.version)).toEqual([winner.version]);
      expect((await call(replicas[(round + 1) % 3], 'GET', `/v1/keys/race-${round}`)).body.publicKey).toEqual(winner.publicKey);
    }
  });

  it("a tenant's first notification settings with a generated signing secret, at once through three replicas: one after the other, never a 500", async () => {
    const settings = '/v1/rotation/notifications/settings';
    // expectedRowVersion 0, "none yet": one creates them (and their signing credential), the others are refused before writing.
    const first = await race('PUT', () => settings, (i) => ({ webhookUrl: `http://127.0.0.1:9/hook-${i}`, generateWebhookSecret: true, expectedRowVersion: 0 }));
    expect(outcomes(first)).toEqual(['200', '409:3207', '409:3207']);
    // Without it each update applies in turn, each rotating the one signing credential to the secret it generated.
    const again = await race('PUT', () => settings, () => ({ generateWebhookSecret: true }));
    expect(outcomes(again)).toEqual(['200', '200', '200']);
    const last = again.map((a) => a.body).reduce((a, b) => ((a.rowVersion as number) > (b.rowVersion as number) ? a : b));
    expect(last.rowVersion).toBe(4);
    const signing = await call(replicas[2], 'GET', `/v1/credentials/${last.webhookSecretCredentialId as string}/value`);
    expect([signing.body.value, (signing.body.metadata as { version: number }).version]).toEqual([last.generatedWebhookSecret, 4]);
  });

  it('the rotation job and a client rotating the same due credentials through other replicas: each rotated once, the client\'s value kept', async () => {
    const policy = await call(replicas[0], 'PUT', '/v1/rotation/policies', { level: 'integration', target: 'due', rotateAfterDays: 1, rotation: 'automatic' });
    expect(policy.status).toBe(200);
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const stored = await call(replicas[i % 3], 'POST', '/v1/credentials', { integrationId: 'due', connectionId: `d${i}`, type: 'api_key', valueStore: 'vault', value: value('old') });
      ids.push(stored.body.id as string);
    }
    const rotations = async () => Number((await pg!.query(`SELECT count(*) AS n FROM "${schema()}".cv_rotation_history WHERE credential_id = ANY($1)`, [ids])).rows[0].n);
    // Slow vault writes: the job's run (one replica, under its lock) takes seconds, its due list read at the start.
    vault!.injectFault({ kind: 'latency', latencyMs: 300, operations: ['setSecret'] });
    const mine = new Map<string, string>();
    try {
      await pg!.query(`UPDATE "${schema()}".cv_credentials SET created_at = created_at - $1 WHERE id = ANY($2)`, [2 * 86_400_000, ids]);
      for (const deadline = Date.now() + 30_000; (await rotations()) < 2; ) {
        if (Date.now() > deadline) throw new Error('the rotation job did not start rotating');
        await new Promise((r) => setTimeout(r, 100));
      }
      // Meanwhile the client rotates those the job has not reached yet (it goes by id), with the rowVersion it read.
      const rows = await pg!.query(`SELECT id, row_version FROM "${schema()}".cv_credentials WHERE id = ANY($1) AND current_version = 1 ORDER BY id DESC`, [ids]);
      for (const row of rows.rows.slice(0, 5) as { id: string; row_version: number }[]) {
        const v = value('client');
        const res = await call(replicas[1], 'POST', `/v1/credentials/${row.id}/rotate`, { value: v, expectedVersion: row.row_version });
        if (res.status === 200) mine.set(row.id, v);
      }
    } finally {
      vault!.clearFaults();
    }
    expect(mine.size).toBeGreaterThan(0);
    for (const deadline = Date.now() + 30_000; (await rotations()) < ids.length - mine.size; ) {
      if (Date.now() > deadline) throw new Error('the rotation job did not rotate the rest');
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 4000)); // more runs on every replica: nothing is due any more
    // One rotation each — the job's or the client's — and the client's values are the ones served.
    const versions = await pg!.query(`SELECT id, current_version FROM "${schema()}".cv_credentials WHERE id = ANY($1)`, [ids]);
    expect(versions.rows.filter((r: { current_version: number }) => r.current_version !== 2)).toEqual([]);
    for (const [id, v] of mine) expect((await call(replicas[2], 'GET', `/v1/credentials/${id}/value`)).body.value).toBe(v);
  });

  it('an unrevoke and a rotate of one revoked credential through two replicas at once: the vault agrees with what was answered', async () => {
    const secrets = emulatorSecretClient(vault!);
    const answers: number[] = [];
    for (let round = 0; round < 6; round++) {
      const stored = await call(replicas[0], 'POST', '/v1/credentials', { integrationId: 'unrevoke', connectionId: `u${round}`, type: 'api_key', valueStore: 'vault', value: value('leaked') });
      const id = stored.body.id as string;
      expect((await call(replicas[0], 'POST', '/v1/rotation/revoke', { credentialId: id, reason: 'leaked' })).status).toBe(200);
      const [unrevoked, rotated] = await Promise.all([
        call(replicas[1], 'POST', `/v1/rotation/credentials/${id}/unrevoke`, { reason: 'false alarm' }),
        new Promise((r) => setTimeout(r, round * 5)).then(() => call(replicas[2], 'POST', `/v1/credentials/${id}/rotate`, { value: value('new') })),
      ]);
      expect(rotated.status).toBe(200);
      // Whichever came first: an unrevoke that answered 200 lifted the revoke (version 1 served again); one that
      // found the credential rotated answers 409 NOT_REVOKED and version 1 stays withdrawn — in the vault too.
      expect([200, 409]).toContain(unrevoked.status);
      answers.push(unrevoked.status);
      const v1 = await call(replicas[0], 'GET', `/v1/credentials/${id}/versions/1/value`);
      expect(v1.status).toBe(unrevoked.status === 200 ? 200 : 409);
      const { rows } = await pg!.query(`SELECT vault_secret_name AS name, vault_secret_version AS version FROM "${schema()}".cv_credential_versions WHERE credential_id = $1 AND version = 1`, [id]);
      const enabled = await secrets.getSecret(rows[0].name, { version: rows[0].version }).then(() => true, () => false);
      expect({ unrevoke: unrevoked.body.code ?? unrevoked.status, v1VaultEnabled: enabled }).toEqual(unrevoked.status === 200 ? { unrevoke: 200, v1VaultEnabled: true } : { unrevoke: 3007, v1VaultEnabled: false });
    }
    process.stdout.write(`[cluster-writes] unrevoke raced with a rotate: ${answers.filter((a) => a === 200).length} lifted first, ${answers.filter((a) => a === 409).length} found it rotated\n`);
  });

  it('a rotation policy created at once through three replicas: one creates it, the others get 409 POLICY_CONFLICT and write nothing', async () => {
    const audited = async () =>
      (await pg!.query(`SELECT count(*)::int AS n FROM "${schema()}".cv_audit_log WHERE action = 'policy_change' AND result = 'success'`)).rows[0].n as number;
    const auditedBefore = await audited();
    let applied = 0;
    for (let round = 0; round < 3; round++) {
      // expectedVersion 0, "must not exist yet": exactly one creates it, whatever the timing.
      const created = await race('PUT', () => '/v1/rotation/policies', (i) => ({ level: 'integration', target: `cas-${round}`, rotateAfterDays: 10 + i, expectedVersion: 0 }));
      expect(outcomes(created)).toEqual(['200', '409:3009', '409:3009']);
      const stored = await call(replicas[0], 'GET', `/v1/rotation/policies/scope?level=integration&target=cas-${round}`);
      expect([stored.body.rowVersion, stored.body.rotateAfterDays]).toEqual([1, created.find((a) => a.status === 200)!.body.rotateAfterDays]);
      // Without it: a writer that lost the race is a conflict too (rotation README), one that came after the creation applies.
      const set = await race('PUT', () => '/v1/rotation/policies', (i) => ({ level: 'integration', target: `set-${round}`, rotateAfterDays: 10 + i }));
      expect(set.filter((a) => a.status !== 200 && a.body.code !== 3009).map((a) => a.text)).toEqual([]);
      const ok = set.filter((a) => a.status === 200).length;
      expect((await call(replicas[1], 'GET', `/v1/rotation/policies/scope?level=integration&target=set-${round}`)).body.rowVersion).toBe(ok);
      applied += 1 + ok;
    }
    // One audit row per write applied, none for the refused ones.
    expect((await audited()) - auditedBefore).toBe(applied);
  });
});
