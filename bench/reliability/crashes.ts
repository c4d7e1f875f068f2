import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DataSource } from 'typeorm';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { legacySeedKind, legacySeedRows, seedLegacyTable } from '@app/migration';
import { Webhook } from 'standardwebhooks';
import { startReplica, type Replica } from '../../test/cluster/replicas';
import { externalVaultEnv } from '../../test/support/cli';
import { TestOAuthServer } from '../../test/support/oauth-server';
import { apiClient, marker, QUIET_HOST_ENV, sleep, tenantKey, type ApiClient } from './http';
import { cliMain, hostBuild } from './processes';
import type { Profile } from './profile';
import { bounded, Examples, info, type PartResult } from './report';

export const KINDS = ['store', 'rotate', 'oauth-refresh', 'webhook-rotation', 'migration'] as const;
export type Kind = (typeof KINDS)[number];
const MIGRATION_ROWS = 120;

/** One credential as the client knows it: what it may read afterwards. */
interface Known {
  id: string;
  /** Values the client saw acknowledged, by version. */
  acked: Map<number, string>;
  /** The value a read must return: the last acknowledged one, or one written since whose answer never came. */
  allowed: Set<string>;
}

/**
 * Crashes: `kill -9` of a real host process (or the CLI, for the migration) at a random moment while it
 * stores, rotates, refreshes OAuth tokens at a real authorization server (oidc-provider), rotates a
 * webhook secret by hand (stage → activate) or migrates legacy rows. The next host process, on the same
 * SQLite database and vault, must serve every credential with a value the client was acknowledged (or
 * one whose answer the kill swallowed, or its previous one), hold no duplicate, let the OAuth connection
 * refresh again, verify webhooks with the current secret and stage a new one, verify the audit chain; a
 * killed migration must complete on resume with exact counts.
 */
export async function crashes(p: Profile, o: { kinds?: readonly Kind[] } = {}): Promise<PartResult> {
  const kinds = o.kinds ?? KINDS;
  const started = performance.now();
  const examples = new Examples(15);
  const dir = mkdtempSync(join(tmpdir(), 'cv-crash-'));
  const vault = await KeyVaultEmulator.start({ quiet: true, throttle: false });
  const idp = await TestOAuthServer.start();
  const build = await hostBuild();
  const key = tenantKey('crash', 'crash');
  const system = tenantKey('system-setup', 'system');
  const dbPath = join(dir, 'host.sqlite');
  const baseEnv: Record<string, string> = {
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'error',
    DATABASE_PATH: dbPath,
    ...externalVaultEnv(vault),
    AUTH_API_KEYS: JSON.stringify([key.entry, system.entry]),
    ...QUIET_HOST_ENV,
  };
  let env = baseEnv;
  let host: Replica | undefined;
  const counts = { trials: 0, killedMidway: 0, wrongValue: 0, duplicates: 0, lostAcked: 0, oauthBroken: 0, oauthReauth: 0, webhookBroken: 0, auditBroken: 0, migrationIncomplete: 0, recoveryFailed: 0 };
  const byKind: Record<string, number> = {};
  try {
    const boot = async () => {
      host = await startReplica(build, `crash-${counts.trials}`, env);
      return apiClient(host.url, key.key, 60_000);
    };
    // ── setup: a provider whose client secret is a system credential, credentials, OAuth connections, webhook secrets ──
    let call = await boot();
    const secret = await apiClient(host!.url, system.key)('POST', '/v1/credentials', { integrationId: 'idp-client', connectionId: 'client-secret', type: 'custom_secret', value: idp.clientSecret });
    if (secret.status !== 201) throw new Error(`setup: ${secret.status} ${secret.text}`);
    env = { ...baseEnv, OAUTH_PROVIDERS: JSON.stringify([{ integrationId: 'idp', issuer: idp.issuer, clientId: idp.clientId, clientSecret: { credentialId: secret.body.id, tenantId: 'system' }, allowInsecureRequests: true }]) };
    await host!.stop();
    call = await boot();
    const known = new Map<string, Known>();
    const must = async (method: string, path: string, body?: unknown) => {
      const r = await call(method, path, body);
      if (r.status >= 300) throw new Error(`setup ${method} ${path}: ${r.status} ${r.text.slice(0, 200)}`);
      return r;
    };
    const rotating: string[] = [];
    for (let i = 0; i < 8; i++) {
      const value = marker('cr');
      const r = await must('POST', '/v1/credentials', { integrationId: 'crash', connectionId: `rot${i}`, type: 'api_key', value, valueStore: i % 2 ? 'vault' : 'envelope' });
      known.set(r.body.id, { id: r.body.id, acked: new Map([[r.body.version, value]]), allowed: new Set([value]) });
      rotating.push(r.body.id);
    }
    const oauthConnections: string[] = [];
    for (let i = 0; i < 4; i++) {
      await must('POST', `/v1/oauth/connections/idp/u${i}/tokens`, await idp.authorize('openid'));
      oauthConnections.push(`u${i}`);
    }
    const webhooks: { connectionId: string; id: string }[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await must('POST', `/v1/rotation/webhooks/hooks/w${i}/secret`, {});
      known.set(r.body.id, { id: r.body.id, acked: new Map([[r.body.version, r.body.secret]]), allowed: new Set([r.body.secret]) });
      webhooks.push({ connectionId: `w${i}`, id: r.body.id });
    }

    /** Whatever each kind sends, concurrently, until the kill. */
    const pendingStores = new Map<string, string>();
    const burst = async (kind: Kind, c: ApiClient): Promise<void> => {
      if (kind === 'store') {
        await Promise.all(
          Array.from({ length: 8 }, async (_, i) => {
            const connectionId = `s${counts.trials}-${i}`;
            const value = marker('cs');
            pendingStores.set(connectionId, value);
            const r = await c('POST', '/v1/credentials', { integrationId: 'crash', connectionId, type: 'api_key', value, valueStore: i % 2 ? 'vault' : 'envelope' });
            if (r.status === 201) known.set(r.body.id, { id: r.body.id, acked: new Map([[r.body.version, value]]), allowed: new Set([value]) });
          }),
        );
      } else if (kind === 'rotate') {
        await Promise.all(
          rotating.slice(0, 4).map(async (id) => {
            const k = known.get(id)!;
            for (let n = 0; n < 3; n++) {
              const value = marker('cr');
              k.allowed.add(value);
              const r = await c('POST', `/v1/credentials/${id}/rotate`, { value });
              if (r.status === 200) {
                k.acked.set(r.body.version, value);
                k.allowed = new Set([value]);
              }
            }
          }),
        );
      } else if (kind === 'oauth-refresh') {
        await Promise.all(oauthConnections.map((conn) => c('POST', `/v1/oauth/connections/idp/${conn}/token-rejected`, {})));
      } else if (kind === 'webhook-rotation') {
        await Promise.all(
          webhooks.map(async (w) => {
            const k = known.get(w.id)!;
            const staged = await c('POST', `/v1/rotation/webhooks/hooks/${w.connectionId}/secret/stage`, {});
            if (staged.status !== 200 && staged.status !== 201) return;
            k.allowed.add(staged.body.secret);
            const activated = await c('POST', `/v1/rotation/webhooks/hooks/${w.connectionId}/secret/activate`, { rotationId: staged.body.rotationId });
            if (activated.status < 300) k.allowed = new Set([staged.body.secret]);
          }),
        );
      }
    };

    const verify = async (c: ApiClient, kind: Kind) => {
      for (const k of known.values()) {
        const r = await c('GET', `/v1/credentials/${k.id}/value`);
        if (r.status !== 200 || !k.allowed.has(r.body.value)) {
          counts.wrongValue++;
          examples.add(`after a ${kind} crash: ${k.id} answers ${r.status} ${r.status === 200 ? 'a value never acknowledged nor in flight' : r.text.slice(0, 120)}`);
        }
        for (const [version, value] of k.acked) {
          const v = await c('GET', `/v1/credentials/${k.id}/versions/${version}/value`);
          if (v.status !== 200 || v.body.value !== value) {
            counts.lostAcked++;
            examples.add(`after a ${kind} crash: acknowledged version ${version} of ${k.id} answers ${v.status}`);
          }
        }
      }
      const list = await c('GET', '/v1/credentials?integrationId=crash&limit=500');
      const seen = new Map<string, number>();
      for (const item of list.body.items as { connectionId: string; type: string; id: string }[]) seen.set(`${item.connectionId}/${item.type}`, (seen.get(`${item.connectionId}/${item.type}`) ?? 0) + 1);
      for (const [conn, n] of seen) {
        if (n > 1) {
          counts.duplicates++;
          examples.add(`duplicate credentials for ${conn}`);
        }
      }
      // A store whose answer the kill swallowed: absent, or present once with the value that was sent.
      for (const item of list.body.items as { connectionId: string; id: string }[]) {
        const sent = pendingStores.get(item.connectionId);
        if (sent && !known.has(item.id)) {
          known.set(item.id, { id: item.id, acked: new Map(), allowed: new Set([sent]) });
          const r = await c('GET', `/v1/credentials/${item.id}/value`);
          if (r.status !== 200 || r.body.value !== sent) {
            counts.wrongValue++;
            examples.add(`an unacknowledged store of ${item.connectionId} committed with another value (${r.status})`);
          }
        }
      }
      pendingStores.clear();
      for (const conn of oauthConnections) {
        const r = await c('POST', `/v1/oauth/connections/idp/${conn}/token-rejected`, {});
        if (r.status === 409 && r.body?.codeName === 'REAUTH_REQUIRED') {
          // The provider rotated the refresh token and the process died before storing the new one: the
          // stored one is spent. Counted (a finding, see the report), then re-authorised to go on.
          counts.oauthReauth++;
          const again = await c('POST', `/v1/oauth/connections/idp/${conn}/tokens`, await idp.authorize('openid'));
          if (again.status >= 300) counts.oauthBroken++;
        } else if (r.status !== 200) {
          counts.oauthBroken++;
          examples.add(`after a ${kind} crash: OAuth connection ${conn} cannot refresh: ${r.status} ${r.text.slice(0, 160)}`);
        }
      }
      for (const w of webhooks) {
        const k = known.get(w.id)!;
        const current = await c('GET', `/v1/credentials/${w.id}/value`);
        const at = new Date(Math.floor(Date.now() / 1000) * 1000);
        const body = '{"crash":true}';
        const signature = current.status === 200 ? new Webhook(current.body.value).sign('msg_c', at, body) : 'v1,none';
        const verified = await fetch(`${host!.url}/v1/rotation/webhooks/hooks/${w.connectionId}/verify`, {
          method: 'POST',
          headers: { 'x-api-key': key.key, 'content-type': 'application/json', 'webhook-id': 'msg_c', 'webhook-timestamp': String(at.getTime() / 1000), 'webhook-signature': signature },
          body,
        });
        await verified.arrayBuffer();
        // Recovery: whatever the kill left staged is discarded; a new rotation stages and activates.
        await c('POST', `/v1/rotation/webhooks/hooks/${w.connectionId}/secret/discard`, {});
        const staged = await c('POST', `/v1/rotation/webhooks/hooks/${w.connectionId}/secret/stage`, {});
        const activated = staged.status < 300 ? await c('POST', `/v1/rotation/webhooks/hooks/${w.connectionId}/secret/activate`, { rotationId: staged.body.rotationId }) : staged;
        if (verified.status !== 200 || activated.status >= 300) {
          counts.webhookBroken++;
          examples.add(`after a ${kind} crash: webhook ${w.connectionId} verify ${verified.status}, new rotation ${activated.status} ${activated.text.slice(0, 120)}`);
        } else {
          k.allowed = new Set([staged.body.secret]);
          const fresh = await c('GET', `/v1/credentials/${w.id}`);
          k.acked.set(fresh.body.version, staged.body.secret);
        }
      }
      const audit = await c('POST', '/v1/audit/verify', {});
      if (audit.status !== 200 || audit.body.valid !== true) {
        counts.auditBroken++;
        examples.add(`after a ${kind} crash: audit verify ${audit.status} ${audit.text.slice(0, 160)}`);
      }
    };

    const migrationTrial = async (trial: number): Promise<boolean> => {
      const tenant = `mig${trial}`;
      const legacyPath = join(dir, `legacy${trial}.sqlite`);
      const legacyKey = randomBytes(32);
      const legacy = await new DataSource({ type: 'better-sqlite3', database: legacyPath }).initialize();
      await seedLegacyTable(legacy, legacySeedRows({ count: MIGRATION_ROWS, keys: [legacyKey], tenants: [tenant] }));
      await legacy.destroy();
      // Its own host database: checkpoints are keyed by legacy row, and each trial seeds the same row ids.
      const migrationDb = join(dir, `migrated${trial}.sqlite`);
      const cliEnv = { ...env, DATABASE_PATH: migrationDb, PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), LEGACY_DATABASE_PATH: legacyPath, LEGACY_ENCRYPTION_KEYS: legacyKey.toString('hex') };
      const run = () => {
        const child = spawn(process.execPath, [cliMain(build), 'migrate', '--source', 'sql', '--batch-size', '10'], { env: cliEnv, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout!.on('data', (d) => (out += d));
        child.stderr!.on('data', (d) => (out += d));
        const exited = new Promise<{ code: number | null; signal: string | null; out: string }>((r) => child.on('exit', (code, signal) => r({ code, signal, out })));
        return { child, exited };
      };
      const count = async (sql: string): Promise<number> => {
        const db = new DataSource({ type: 'better-sqlite3', database: migrationDb, readonly: true });
        try {
          await db.initialize();
          return Number((await db.query(sql))[0].n);
        } catch {
          return 0; // the table does not exist yet
        } finally {
          if (db.isInitialized) await db.destroy();
        }
      };
      const target = 1 + Math.floor(Math.random() * (MIGRATION_ROWS - 2));
      const first = run();
      const deadline = Date.now() + 60_000;
      let midway = false;
      while (Date.now() < deadline) {
        const done = await count(`SELECT COUNT(*) AS n FROM cv_migration_checkpoints`);
        if (done >= target) {
          midway = true;
          break;
        }
        if (first.child.exitCode !== null) break;
        await sleep(30);
      }
      first.child.kill('SIGKILL');
      await first.exited;
      const second = await run().exited;
      let expected = 0;
      for (let i = 0; i < MIGRATION_ROWS; i++) expected += legacySeedKind(i, {}) === 1 ? 1 : 2;
      const credentials = await count(`SELECT COUNT(*) AS n FROM cv_credentials WHERE tenant_id = '${tenant}' AND status <> 'deleted'`);
      const distinct = await count(`SELECT COUNT(*) AS n FROM (SELECT DISTINCT integration_id, connection_id, type FROM cv_credentials WHERE tenant_id = '${tenant}' AND status <> 'deleted')`);
      const audited = await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = '${tenant}' AND action = 'migrate'`);
      if (second.code !== 0 || credentials !== expected || distinct !== credentials || audited !== credentials) {
        counts.migrationIncomplete++;
        examples.add(`migration killed at ~${target} rows: resume exit ${second.code}, ${credentials} credentials (${distinct} distinct, ${audited} audited) of ${expected}; ${second.out.slice(-200)}`);
      }
      if (credentials !== distinct) counts.duplicates++;
      return midway;
    };

    /** How long each kind's last uninterrupted burst took, to aim the next kill inside one. */
    const burstMs = new Map<Kind, number>();
    for (let t = 0; t < p.crashes.trials; t++) {
      const kind = kinds[t % kinds.length];
      counts.trials++;
      byKind[kind] = (byKind[kind] ?? 0) + 1;
      if (kind === 'migration') {
        await host?.stop();
        host = undefined;
        if (await migrationTrial(t)) counts.killedMidway++;
        call = await boot();
        await verify(call, kind);
        continue;
      }
      // A random moment inside the burst: up to 90% of how long this kind's last burst took (400 ms at first).
      const delay = Math.floor(Math.random() * 0.9 * (burstMs.get(kind) ?? 400));
      let finished = false;
      let killed = false;
      const burstStart = performance.now();
      const running = burst(kind, call)
        .catch(() => undefined)
        .then(() => {
          finished = true;
          if (!killed) burstMs.set(kind, performance.now() - burstStart);
        });
      await sleep(delay);
      const finishedBeforeKill = finished;
      killed = true;
      await host!.kill9();
      await running;
      if (!finishedBeforeKill) counts.killedMidway++;
      try {
        call = await boot();
      } catch (e) {
        counts.recoveryFailed++;
        examples.add(`the host did not start after a ${kind} crash: ${(e as Error).message.slice(0, 200)}`);
        throw e;
      }
      await verify(call, kind);
    }
    const audit = await call('POST', '/v1/audit/verify', {});
    return {
      part: 'Crashes',
      profile: p.name,
      method:
        "The host runs as its own process (`node apps/api/src/main.js`, one SQLite database, the local vault over HTTPS as an external vault, an OAuth provider at oidc-provider whose client secret is a system credential). Trials cycle through five kinds; in each, the client starts a burst of concurrent requests — 8 stores; 4 chains of 3 rotations; a refresh of 4 OAuth connections (token-rejected, rotating refresh tokens at the provider); stage → activate of 2 webhook secrets — and the process is killed with SIGKILL at a random moment up to 90% of the duration of that kind's last burst (400 ms for the first); a migration trial runs `cli migrate` over 120 legacy rows in its own process (and its own host database: checkpoints are keyed by legacy row) and kills it once a random number of checkpoints is written, then runs it again. After each kill a new host process starts on the same database and every credential the client knows is read: its value must be the last acknowledged one or one whose answer the kill swallowed (or the previous one), every acknowledged version must read back, no connection may hold two credentials of one type, an unacknowledged store is absent or holds the value sent, every OAuth connection must refresh again, each webhook must verify with the current secret and a leftover staged secret be discarded and a new rotation complete, the tenant's audit chain must verify; a resumed migration must exit 0 with exactly one credential per legacy token and one MIGRATE audit row each.",
      ran: `${counts.trials} trials (${Object.entries(byKind).map(([k, n]) => `${k} ${n}`).join(', ')}), ${counts.killedMidway} of them killed before the burst (or the migration) had finished; ${known.size} credentials checked after every trial; final audit verify ${audit.status} ${audit.body?.valid === true ? 'valid' : 'NOT valid'}.`,
      figures: [
        info('trials', counts.trials),
        info('kills before the work finished', counts.killedMidway),
        bounded('reads of a value never acknowledged nor in flight', counts.wrongValue, '=', 0),
        bounded('acknowledged versions lost', counts.lostAcked, '=', 0),
        bounded('duplicate credentials', counts.duplicates, '=', 0),
        bounded('OAuth connections failing otherwise than re-authorisation after a crash', counts.oauthBroken, '=', 0),
        info('OAuth connections needing re-authorisation after a crash (refresh token rotated at the provider, not yet stored)', counts.oauthReauth),
        bounded('webhook secrets not verifying or not rotatable after a crash', counts.webhookBroken, '=', 0),
        bounded('audit chain verifications failed', counts.auditBroken + (audit.body?.valid === true ? 0 : 1), '=', 0),
        bounded('migrations not complete and exact on resume', counts.migrationIncomplete, '=', 0),
        bounded('host restarts failed', counts.recoveryFailed, '=', 0),
      ],
      examples: examples.list,
      durationS: Math.round((performance.now() - started) / 1000),
    };
  } finally {
    await host?.stop();
    build.remove();
    await idp.close();
    await vault.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
