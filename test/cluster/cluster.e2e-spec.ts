import { randomBytes } from 'node:crypto';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { advisoryLockKey, ADVISORY_LOCK_NAMESPACES, LOCK_KEYS } from '@app/common';
import { createTestDatabase, POSTGRES_URL, REDIS_URL, TestDatabase, TestOAuthServer } from '@app/testing';
import Redis from 'ioredis';
import { Client } from 'pg';
import { generateApiKey } from '../../apps/api/src/auth/api-keys';
import { ROTATION_JOBS_OFF } from '../support/host';
import { buildHost, deploymentEnv, HostBuild, Replica, startReplica } from './replicas';

/**
 * Scale-out, proven with real processes: three host processes (`node`, not three apps in one) on one
 * PostgreSQL schema, one Redis and one local vault reached over HTTPS as an external vault, behind no
 * balancer — the test spreads the requests itself. Jobs run on all three every 2 seconds.
 */
jest.setTimeout(180_000);

const TENANT = 'acme';
const SCOPES = ['credentials:read', 'credentials:read-value', 'credentials:write', 'rotation:read', 'rotation:write', 'credentials:revoke'];
const BURST_CREDENTIALS = 100;

describe('cluster: three host processes on one PostgreSQL, Redis and vault', () => {
  let build: HostBuild | undefined;
  let vault: KeyVaultEmulator | undefined;
  let idp: TestOAuthServer | undefined;
  let db: TestDatabase | undefined;
  let pg: Client | undefined;
  let redis: Redis | undefined;
  const replicas: Replica[] = [];
  const prefix = `cvt:${randomBytes(4).toString('hex')}:`;
  const schema = () => (db!.options as { schema: string }).schema;
  /** Every credential value this test stored or read back: none may sit in Redis in plaintext. */
  const values = new Set<string>();
  const keys = {
    acme: generateApiKey('acme-app', TENANT, SCOPES),
    jobs: generateApiKey('jobs-app', 'jobs', SCOPES),
    kill: generateApiKey('kill-app', 'kill', SCOPES),
    system: generateApiKey('setup', 'system', SCOPES),
  };
  type Key = keyof typeof keys;
  /** The cold burst's credentials (id → value), stored by the setup replica, never read before the burst. */
  const burst = new Map<string, string>();
  /** One credential per replica, read before the burst so each has its cache key from the vault. */
  const warmIds: string[] = [];

  const call = async (r: Replica, key: Key, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${r.url}${path}`, {
      method,
      headers: { 'x-api-key': keys[key].key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
      // A replica that hangs fails the test with a message, not by jest's timeout.
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, text };
  };
  const secret = (tag: string) => {
    const v = `${tag}_${randomBytes(18).toString('hex')}`;
    values.add(v);
    return v;
  };
  const store = async (r: Replica, key: Key, body: Record<string, unknown>) => {
    const res = await call(r, key, 'POST', '/v1/credentials', { valueStore: 'vault', ...body });
    if (res.status !== 201) throw new Error(`store on ${r.name}: ${res.status} ${res.text}`);
    return res.body as { id: string; rowVersion: number };
  };
  const readValue = async (r: Replica, key: Key, id: string) => {
    const res = await call(r, key, 'GET', `/v1/credentials/${id}/value`);
    if (res.status === 200) values.add(res.body.value);
    return res;
  };
  const live = () => replicas.filter((r) => r.alive());
  const waitFor = async (what: string, cond: () => Promise<boolean>, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await pg!.query(sql, params)).rows as T[];
  const count = async (sql: string, params: unknown[] = []) => Number((await q<{ n: string }>(sql, params))[0].n);

  const hostEnv = (name: string): Record<string, string> => ({
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'warn',
    SHUTDOWN_TIMEOUT_MS: '5000',
    SHUTDOWN_DRAIN_MS: '0', // stopped by the test, not by a load balancer: no drain (test/shutdown-drain.e2e-spec.ts has it)
    // application_name tells which replica holds a job's advisory lock (pg_stat_activity).
    ...deploymentEnv({ appName: `cv-cluster-${name}`, schema: schema(), vault: vault!, redisKeyPrefix: prefix }),
    // The bursts below count vault reads: a heartbeat late on a loaded machine must not drop a replica's cache under them.
    CACHE_HEARTBEAT_LOST_AFTER_MS: '30000',
    AUTH_API_KEYS: JSON.stringify(Object.values(keys).map((k) => k.entry)),
    RATE_LIMIT_PER_MINUTE: '1000000',
    AUDIT_ANCHOR_ENABLED: 'false',
    AUDIT_RETENTION_ENABLED: 'false',
    // The burst below, not the proactive job, is what must refresh the expiring tokens.
    OAUTH_PROACTIVE_ENABLED: 'false',
    ROTATION_EXPIRY_MONITOR_CRON: '*/2 * * * * *',
    ROTATION_CHECK_CRON: '*/2 * * * * *',
    NOTIFICATIONS_WEBHOOK_ENABLED: 'false',
  });

  beforeAll(async () => {
    [build, vault, idp, db] = await Promise.all([
      buildHost(),
      KeyVaultEmulator.start({ quiet: true, throttle: false }),
      TestOAuthServer.start(),
      createTestDatabase('postgres'),
    ]);
    pg = new Client({ connectionString: POSTGRES_URL });
    await pg.connect();
    redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect(); // Redis down: the suite fails here, it never skips.

    // Setup replica (no Redis, no jobs): runs the migrations once, stores the OAuth client secret the
    // provider references and the credentials of the cold burst, then stops — the three start cold.
    const setup = await startReplica(build, 'setup', {
      ...hostEnv('setup'),
      REDIS_URL: '',
      ...ROTATION_JOBS_OFF,
    });
    let clientSecretId: string;
    try {
      clientSecretId = (await store(setup, 'system', { integrationId: 'idp', connectionId: 'client-secret', type: 'custom_secret', value: idp.clientSecret })).id;
      values.delete(idp.clientSecret);
      for (let i = 0; i < BURST_CREDENTIALS; i += 10) {
        await Promise.all(
          Array.from({ length: 10 }, async (_, j) => {
            const value = secret('burst');
            burst.set((await store(setup, 'acme', { integrationId: 'burst', connectionId: `c${i + j}`, type: 'api_key', value })).id, value);
          }),
        );
      }
      for (const n of ['a', 'b', 'c']) warmIds.push((await store(setup, 'acme', { integrationId: 'warm', connectionId: n, type: 'api_key', value: secret('warm') })).id);
    } finally {
      await setup.stop();
    }

    const providers = JSON.stringify([
      { integrationId: 'idp', issuer: idp.issuer, clientId: idp.clientId, clientSecret: { credentialId: clientSecretId, tenantId: 'system' }, allowInsecureRequests: true },
    ]);
    const started = await Promise.allSettled(['a', 'b', 'c'].map((n) => startReplica(build!, n, { ...hostEnv(n), OAUTH_PROVIDERS: providers })));
    for (const s of started) if (s.status === 'fulfilled') replicas.push(s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  });

  afterAll(async () => {
    // The replicas log warnings and errors only: their last lines explain a failure.
    for (const r of replicas) process.stdout.write(`[cluster] ${r.name} (pid ${r.pid}) last output:\n${r.output.slice(-10).map((l) => l.slice(0, 400)).join('\n')}\n`);
    await Promise.allSettled(replicas.map((r) => r.stop()));
    await redis?.quit().catch(() => undefined);
    await pg?.end().catch(() => undefined);
    await Promise.allSettled([vault?.stop(), idp?.close(), db?.drop()]);
    build?.remove();
  });

  it('starts three separate processes', () => {
    expect(replicas).toHaveLength(3);
    expect(new Set(replicas.map((r) => r.pid)).size).toBe(3);
    expect(new Set(replicas.map((r) => r.url)).size).toBe(3);
  });

  it('a cold burst of reads for 100 credentials spread over the three replicas makes exactly 100 vault reads', async () => {
    // Each replica reads one other credential first: what it fetches once per process (its cache key)
    // is not part of the burst.
    for (const [i, r] of replicas.entries()) expect((await readValue(r, 'acme', warmIds[i])).status).toBe(200);
    // Replicas that started together may have raced to create the cache key (two or three versions, by
    // design: entries name their version). Reading every replica's warm entry on every replica fetches
    // the other versions now, not during the burst (seen on a loaded CI machine as 103 vault reads).
    for (const r of replicas) for (const id of warmIds) expect((await readValue(r, 'acme', id)).status).toBe(200);
    // The replicas' own view of their shared cache: a Redis call that fails or takes over its timeout
    // makes that read skip the shared tier (counted in l2Errors) and go to the vault.
    type CacheHealth = { l2Errors?: number };
    const cacheHealth = () =>
      Promise.all(
        replicas.map(async (r) => ((await (await fetch(`${r.url}/health/ready`)).json()) as { details?: { cache?: CacheHealth } }).details?.cache ?? {}),
      );
    const l2Errors = async () => (await cacheHealth()).reduce((n, c) => n + (c.l2Errors ?? 0), 0);
    const errorsBefore = await l2Errors();
    vault!.resetStats();
    const started = Date.now();
    // Every credential read on all three replicas at once (up to 300 vault reads without a cluster-wide
    // single flight), 20 credentials at a time so a loaded 2-core CI machine is not what is measured.
    const ids = [...burst.keys()];
    const reads: { id: string; res: Awaited<ReturnType<typeof readValue>> }[] = [];
    for (let i = 0; i < ids.length; i += 20) {
      const wave = ids.slice(i, i + 20).flatMap((id) => replicas.map((r) => readValue(r, 'acme', id).then((res) => ({ id, res }))));
      reads.push(...(await Promise.all(wave)));
    }
    const ms = Date.now() - started;
    expect(reads.filter(({ id, res }) => res.status !== 200 || res.body.value !== burst.get(id)).map(({ res }) => res.status)).toEqual([]);
    const gets = vault!.stats().byOperationAndStatus['getSecret:200'] ?? 0;
    const skipped = (await l2Errors()) - errorsBefore;
    process.stdout.write(
      `[cluster] cold burst: ${reads.length} reads of ${burst.size} credentials on 3 replicas in ${ms} ms → ${gets} vault reads ` +
        `(${skipped} reads skipped the shared tier: Redis over its timeout)\n`,
    );
    // One vault read per credential, plus only the reads the replicas report as having bypassed Redis
    // (0 on an idle machine; a loaded 2-core one can push a Redis call past its 500 ms timeout).
    expect(gets).toBeGreaterThanOrEqual(burst.size);
    expect(gets - skipped).toBeLessThanOrEqual(burst.size);
    expect(skipped).toBeLessThan(burst.size / 10);
  });

  it('a revoke on one replica is refused by the next read on the two others; a write is seen there within the fan-out bound (measured)', async () => {
    const [a, b, c] = replicas;
    const seen = async (r: Replica, id: string, ok: (res: Awaited<ReturnType<typeof readValue>>) => boolean, since: number) => {
      for (let reads = 1; ; reads++) {
        const res = await readValue(r, 'acme', id);
        if (ok(res)) return { ms: Date.now() - since, firstFresh: reads === 1 };
        if (Date.now() - since > 3000) throw new Error(`replica ${r.name} still serves the old state of ${id} after 3 s`);
        await new Promise((res) => setTimeout(res, 2));
      }
    };
    const results: { kind: string; ms: number; firstFresh: boolean }[] = [];
    for (let i = 0; i < 10; i++) {
      const cred = await store(a, 'acme', { integrationId: 'fanout', connectionId: `f${i}`, type: 'api_key', value: secret('v1') });
      // Warm the two other replicas' caches with version 1.
      for (const r of [b, c]) expect((await readValue(r, 'acme', cred.id)).status).toBe(200);
      const v2 = secret('v2');
      const rotated = await call(a, 'acme', 'POST', `/v1/credentials/${cred.id}/rotate`, { value: v2 });
      expect(rotated.status).toBe(200);
      let since = Date.now();
      for (const x of await Promise.all([b, c].map((r) => seen(r, cred.id, (res) => res.status === 200 && res.body.value === v2, since)))) results.push({ kind: 'write', ...x });
      const revoked = await call(a, 'acme', 'POST', '/v1/rotation/revoke', { credentialId: cred.id, reason: 'cluster test' });
      expect(revoked.status).toBe(200);
      since = Date.now();
      for (const x of await Promise.all([b, c].map((r) => seen(r, cred.id, (res) => res.status === 409 && res.body.code === 2009, since)))) results.push({ kind: 'revoke', ...x });
    }
    const ms = results.map((x) => x.ms).sort((x, y) => x - y);
    const pct = (p: number) => ms[Math.min(ms.length - 1, Math.ceil((p / 100) * ms.length) - 1)];
    const stale = (kind: string) => results.filter((x) => x.kind === kind && !x.firstFresh).length;
    process.stdout.write(
      `[cluster] propagation A → B, C over ${results.length} observations (time from A's answer until a read on B or C has completed ` +
        `with the new state): p50 ${pct(50)} ms, p99 ${pct(99)} ms, max ${ms[ms.length - 1]} ms; the first read after A's answer was stale ` +
        `${stale('write')}/${results.length / 2} times after a write, ${stale('revoke')}/${results.length / 2} after a revoke\n`,
    );
    // A revoked value is never served again once the revoke has answered, on any replica.
    expect(stale('revoke')).toBe(0);
    // A new value is seen within the fan-out's bound (without it: the cache TTL, 5 minutes). The first read
    // may still race the eviction, which is published right after the writer's commit.
    expect(pct(99)).toBeLessThan(1000);
  });

  it('refreshes each expiring OAuth token exactly once under concurrent load on all three replicas', async () => {
    const [a] = replicas;
    const connections = ['u1', 'u2', 'u3', 'u4', 'u5'];
    const issued = new Map<string, string>();
    // Issued with an 8 s lifetime: the refresh-ahead window is capped at half of it, so 4.5 s after
    // the last one is stored every token is inside its window and the next read refreshes it.
    idp!.setAccessTokenTtl(8);
    for (const c of connections) {
      const tokens = await idp!.authorize('openid');
      values.add(tokens.access_token);
      values.add(tokens.refresh_token!);
      issued.set(c, tokens.access_token);
      const res = await call(a, 'acme', 'POST', `/v1/oauth/connections/idp/${c}/tokens`, tokens);
      expect(res.status).toBe(201);
    }
    idp!.setAccessTokenTtl(3600);
    idp!.resetCounters();
    await new Promise((r) => setTimeout(r, 4500));

    // 12 concurrent readers per connection, spread round-robin over the three replicas.
    const reads = await Promise.all(
      connections.flatMap((c) =>
        Array.from({ length: 12 }, (_, i) => call(replicas[i % 3], 'acme', 'GET', `/v1/oauth/connections/idp/${c}/access-token`).then((r) => ({ c, r }))),
      ),
    );
    expect(reads.filter(({ r }) => r.status !== 200).map(({ r }) => r.text)).toEqual([]);
    expect(idp!.tokenCallCount('refresh_token')).toBe(connections.length);

    // Afterwards every replica hands out the one refreshed token of each connection.
    for (const c of connections) {
      const answers = await Promise.all(replicas.map((r) => call(r, 'acme', 'GET', `/v1/oauth/connections/idp/${c}/access-token`)));
      const tokens = new Set(answers.map((x) => x.body.accessToken as string));
      expect(tokens.size).toBe(1);
      const [fresh] = [...tokens];
      expect(fresh).not.toBe(issued.get(c));
      values.add(fresh);
    }
    expect(idp!.tokenCallCount('refresh_token')).toBe(connections.length);
  });

  it('raises every due notice and runs every due rotation exactly once, with one notification each, while the jobs run on all three', async () => {
    const [a, b, c] = replicas;
    // The notification counters have no tenant label: count from what they say once earlier events are out.
    await waitFor('earlier events to be delivered', async () => (await count(`SELECT count(*) AS n FROM "${schema()}".cv_outbox WHERE delivered_at IS NULL`)) === 0);
    const busSent = async () => {
      let n = 0;
      for (const r of replicas) {
        const text = await (await fetch(`${r.url}/metrics`)).text();
        n += Number(/^credential_vault_notifications_total\{channel="bus",outcome="sent"\} (\d+)/m.exec(text)?.[1] ?? 0);
      }
      return n;
    };
    const sentBefore = await busSent();
    const policy = await call(b, 'jobs', 'PUT', '/v1/rotation/policies', { level: 'tenant', credentialType: 'api_key', rotateAfterDays: 1, rotation: 'automatic' });
    expect(policy.status).toBe(200);
    const expiring: string[] = [];
    const aged: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = [a, b, c][i % 3];
      const expiresAt = new Date(Date.now() + 5 * 86_400_000).toISOString();
      expiring.push((await store(r, 'jobs', { integrationId: 'expiring', connectionId: `e${i}`, type: 'custom_secret', value: secret('exp'), expiresAt })).id);
      aged.push((await store(r, 'jobs', { integrationId: 'aged', connectionId: `r${i}`, type: 'api_key', value: secret('aged') })).id);
    }
    // Two days old: past the policy's rotate-after, as if created before the day before yesterday.
    await pg!.query(`UPDATE "${schema()}".cv_credentials SET created_at = created_at - $1 WHERE id = ANY($2)`, [2 * 86_400_000, aged]);

    const events = async (name: string, ids: string[]) =>
      q<{ credential_id: string; n: string }>(
        `SELECT payload::json->>'credentialId' AS credential_id, count(*) AS n FROM "${schema()}".cv_outbox WHERE name = $1 AND payload::json->>'credentialId' = ANY($2) GROUP BY 1`,
        [name, ids],
      );
    const settled = async () =>
      (await events('credential.expiring', expiring)).length === expiring.length &&
      (await events('credential.rotated', aged)).length === aged.length &&
      (await count(`SELECT count(*) AS n FROM "${schema()}".cv_outbox WHERE tenant_id = 'jobs' AND delivered_at IS NULL`)) === 0;
    await waitFor('the jobs to raise the notices, rotate and deliver', settled, 60_000);
    // Several more job runs on every replica: nothing happens twice.
    await new Promise((r) => setTimeout(r, 5000));

    expect((await events('credential.expiring', expiring)).map((e) => Number(e.n))).toEqual(expiring.map(() => 1));
    expect((await events('credential.rotated', aged)).map((e) => Number(e.n))).toEqual(aged.map(() => 1));
    const history = await q<{ credential_id: string; n: string }>(
      `SELECT credential_id, count(*) AS n FROM "${schema()}".cv_rotation_history WHERE credential_id = ANY($1) GROUP BY 1`,
      [aged],
    );
    expect(history.map((h) => Number(h.n))).toEqual(aged.map(() => 1));
    const versions = await q<{ current_version: number }>(`SELECT current_version FROM "${schema()}".cv_credentials WHERE id = ANY($1)`, [aged]);
    expect(versions.map((v) => v.current_version)).toEqual(aged.map(() => 2));

    // One notification per event per channel: each delivery row finished on its first attempt.
    const deliveries = await q<{ channel: string; status: string; attempts: number }>(
      `SELECT channel, status, attempts FROM "${schema()}".cv_notification_deliveries WHERE tenant_id = 'jobs'`,
    );
    const jobEvents = await count(
      `SELECT count(*) AS n FROM "${schema()}".cv_outbox WHERE tenant_id = 'jobs' AND name IN ('credential.expiring', 'credential.rotated')`,
    );
    expect(jobEvents).toBe(expiring.length + aged.length);
    const bus = deliveries.filter((d) => d.channel === 'bus');
    expect(bus).toHaveLength(jobEvents);
    expect(bus.every((d) => d.status === 'delivered' && d.attempts === 1)).toBe(true);
    // And the replicas' counters agree: sent once in the whole cluster, never a duplicate send.
    expect((await busSent()) - sentBefore).toBe(jobEvents);

    // The rotated values are served (and recorded, for the Redis scan).
    for (const id of aged) expect((await readValue(c, 'jobs', id)).status).toBe(200);
  });

  it('a replica killed with SIGKILL in the middle of the rotation job: the next run on another replica completes it, nothing half done', async () => {
    const n = 24;
    const policy = await call(replicas[0], 'kill', 'PUT', '/v1/rotation/policies', { level: 'tenant', credentialType: 'api_key', rotateAfterDays: 1, rotation: 'automatic' });
    expect(policy.status).toBe(200);
    const ids: string[] = [];
    const original = new Map<string, string>();
    for (let i = 0; i < n; i += 6) {
      const batch = await Promise.all(
        Array.from({ length: 6 }, async (_, j) => {
          const value = secret('kill');
          const { id } = await store(replicas[(i + j) % 3], 'kill', { integrationId: 'fleet', connectionId: `k${i + j}`, type: 'api_key', value });
          original.set(id, value);
          return id;
        }),
      );
      ids.push(...batch);
    }
    // Every replica has version 1 cached: they must all serve version 2 after the rotations.
    for (const r of replicas) for (const id of ids) expect((await readValue(r, 'kill', id)).status).toBe(200);
    // Slow vault writes make one run take several seconds: a window to kill its replica in.
    vault!.injectFault({ kind: 'latency', latencyMs: 250, operations: ['setSecret'] });
    const lockId = BigInt(advisoryLockKey(LOCK_KEYS.rotationCheck, `${ADVISORY_LOCK_NAMESPACES.distributedLock}@${schema()}`));
    const unsigned = BigInt.asUintN(64, lockId);
    const holder = async () =>
      (
        await q<{ application_name: string }>(
          `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1`,
          [(unsigned >> 32n).toString(), (unsigned & 0xffffffffn).toString()],
        )
      )[0]?.application_name;
    const rotated = () => count(`SELECT count(*) AS n FROM "${schema()}".cv_rotation_history WHERE tenant_id = 'kill'`);

    let victim: Replica | undefined;
    let doneAtKill = -1;
    try {
      await pg!.query(`UPDATE "${schema()}".cv_credentials SET created_at = created_at - $1 WHERE id = ANY($2)`, [2 * 86_400_000, ids]);
      await waitFor(
        'a replica in the middle of the rotation job',
        async () => {
          const done = await rotated();
          const name = await holder();
          if (done < 2 || done >= n - 4 || !name) return false;
          victim = replicas.find((r) => `cv-cluster-${r.name}` === name);
          return victim !== undefined;
        },
        30_000,
      );
      await victim!.kill9();
      doneAtKill = await rotated();
    } finally {
      vault!.clearFaults();
    }
    expect(doneAtKill).toBeGreaterThan(0);
    expect(doneAtKill).toBeLessThan(n);
    process.stdout.write(`[cluster] killed replica ${victim!.name} (pid ${victim!.pid}) after ${doneAtKill}/${n} rotations\n`);

    await waitFor('the next run elsewhere to rotate the rest', async () => (await rotated()) >= n, 60_000);
    await new Promise((r) => setTimeout(r, 3000));

    // Exactly one rotation per credential: version 2, one history row, one audit success, one event.
    const perCredential = async (sql: string) => {
      const rows = await q<{ id: string; n: string }>(sql, [ids]);
      return ids.map((id) => Number(rows.find((r) => r.id === id)?.n ?? 0));
    };
    expect(await perCredential(`SELECT credential_id AS id, count(*) AS n FROM "${schema()}".cv_rotation_history WHERE credential_id = ANY($1) GROUP BY 1`)).toEqual(
      ids.map(() => 1),
    );
    expect(
      await perCredential(
        `SELECT payload::json->>'credentialId' AS id, count(*) AS n FROM "${schema()}".cv_outbox WHERE name = 'credential.rotated' AND payload::json->>'credentialId' = ANY($1) GROUP BY 1`,
      ),
    ).toEqual(ids.map(() => 1));
    const versions = await q<{ id: string; current_version: number; status: string }>(
      `SELECT id, current_version, status FROM "${schema()}".cv_credentials WHERE id = ANY($1)`,
      [ids],
    );
    expect(versions.map((v) => [v.current_version, v.status])).toEqual(ids.map(() => [2, 'active']));
    // The survivors serve every credential's new value, although they had the old one cached.
    for (const r of live()) {
      for (const id of ids) {
        const res = await readValue(r, 'kill', id);
        expect(res.status).toBe(200);
        expect(res.body.value).not.toBe(original.get(id));
      }
    }
  });

  it('leaves no credential value in plaintext in Redis (every key under the test prefix, every value)', async () => {
    expect(values.size).toBeGreaterThan(BURST_CREDENTIALS);
    const found: string[] = [];
    let scanned = 0;
    for await (const batch of redis!.scanStream({ match: `${prefix}*`, count: 500 })) {
      for (const key of batch as string[]) {
        scanned++;
        const type = await redis!.type(key);
        const parts: Buffer[] = [Buffer.from(key)];
        if (type === 'string') parts.push((await redis!.getBuffer(key)) ?? Buffer.alloc(0));
        else if (type === 'hash') parts.push(...Object.values(await redis!.hgetallBuffer(key)).flat());
        else if (type === 'list') parts.push(...(await redis!.lrangeBuffer(key, 0, -1)));
        else if (type === 'set') parts.push(...(await redis!.smembersBuffer(key)));
        else if (type === 'zset') parts.push(...(await redis!.zrangeBuffer(key, 0, -1)));
        else if (type === 'stream') parts.push(Buffer.from(JSON.stringify(await redis!.xrange(key, '-', '+'))));
        const blob = Buffer.concat(parts);
        for (const v of values) {
          if (blob.includes(v) || blob.includes(Buffer.from(v).toString('base64'))) found.push(`${key} holds a value tagged ${v.split('_')[0]}`);
        }
      }
    }
    const cacheKeys = (await redis!.keys(`${prefix}cache:*`)).length;
    process.stdout.write(`[cluster] scanned ${scanned} Redis keys under ${prefix} (${cacheKeys} of the credential cache) against ${values.size} values\n`);
    // The shared cache holds entries (so the scan looked at sealed values) and none of them is readable.
    expect(cacheKeys).toBeGreaterThan(0);
    expect(found).toEqual([]);
  });
});
