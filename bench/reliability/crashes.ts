import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DataSource } from 'typeorm';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { LEASE_TTL_MS } from '@app/oauth-refresh';
import { legacySeedKind, legacySeedRows, seedLegacyTable } from '@app/migration';
import { Webhook } from 'standardwebhooks';
import { startReplica, type Replica } from '../../test/cluster/replicas';
import { externalVaultEnv } from '../../test/support/cli';
import { TestOAuthServer } from '../../test/support/oauth-server';
import { hostDatabase, type Db } from './databases';
import { apiClient, forEachLimited, marker, QUIET_HOST_ENV, sleep, tenantKey, type ApiClient } from './http';
import { cliMain, hostBuild } from './processes';
import type { Profile } from './profile';
import { bounded, Examples, info, trace, type PartResult } from './report';

export const KINDS = ['store', 'rotate', 'oauth-refresh', 'webhook-rotation', 'migration'] as const;
export type Kind = (typeof KINDS)[number];
const MIGRATION_ROWS = 120;
/** How long a host may take to print its URL: boot time is no bound here, and a niced run on a busy 2-vCPU machine can take a minute. */
const BOOT_TIMEOUT_MS = 180_000;

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
  // Independent start-ups overlap (each takes seconds on a loaded machine); a failed one stops the others.
  const [vaultUp, idpUp, buildUp] = await Promise.allSettled([KeyVaultEmulator.start({ quiet: true, throttle: false }), TestOAuthServer.start(), hostBuild()]);
  if (vaultUp.status === 'rejected' || idpUp.status === 'rejected' || buildUp.status === 'rejected') {
    if (vaultUp.status === 'fulfilled') await vaultUp.value.stop();
    if (idpUp.status === 'fulfilled') await idpUp.value.close();
    if (buildUp.status === 'fulfilled') buildUp.value.remove();
    rmSync(dir, { recursive: true, force: true });
    throw [vaultUp, idpUp, buildUp].map((r) => (r.status === 'rejected' ? (r.reason as unknown) : undefined)).find((e) => e !== undefined);
  }
  const [vault, idp, build] = [vaultUp.value, idpUp.value, buildUp.value];
  const key = tenantKey('crash', 'crash');
  const system = tenantKey('system-setup', 'system');
  const counts = {
    trials: 0,
    killedMidway: 0,
    wrongValue: 0,
    duplicates: 0,
    lostAcked: 0,
    oauthBroken: 0,
    oauthReauth: 0,
    oauthInFlight: 0,
    oauthLeaseWaits: 0,
    oauthReauthOutsideWindow: 0,
    oauthTokenUnknown: 0,
    oauthReauthNotFailFast: 0,
    webhookBroken: 0,
    auditBroken: 0,
    migrationIncomplete: 0,
    recoveryFailed: 0,
  };
  const byKind: Record<string, number> = {};
  const runs: string[] = [];

  /** Every trial of one database: its own host database (and Redis prefix on PostgreSQL), the same vault and provider. */
  const onDatabase = async (db: Db, trials: number, deadline: number): Promise<void> => {
    const database = await hostDatabase(db, dir, 'host');
    const baseEnv: Record<string, string> = { NODE_ENV: 'test', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'error', ...database.env, ...externalVaultEnv(vault), AUTH_API_KEYS: JSON.stringify([key.entry, system.entry]), ...QUIET_HOST_ENV };
    let env = baseEnv;
    let host: Replica | undefined;
    /** `cli migrate` killed mid-run and run again, on a host database of its own (checkpoints are keyed by legacy row). */
    const migrationTrial = async (trial: number): Promise<boolean> => {
      const tenant = `mig${trial}`;
      const legacyPath = join(dir, `legacy${trial}.sqlite`);
      const legacyKey = randomBytes(32);
      const legacy = await new DataSource({ type: 'better-sqlite3', database: legacyPath }).initialize();
      await seedLegacyTable(legacy, legacySeedRows({ count: MIGRATION_ROWS, keys: [legacyKey], tenants: [tenant] }));
      await legacy.destroy();
      // Its own host database: checkpoints are keyed by legacy row, and each trial seeds the same row ids.
      const migrated = await hostDatabase(db, dir, `migrated${trial}`);
      const cliEnv = { ...baseEnv, ...migrated.env, PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), LEGACY_DATABASE_PATH: legacyPath, LEGACY_ENCRYPTION_KEYS: legacyKey.toString('hex') };
      const run = (...args: string[]) => {
        const child = spawn(process.execPath, [cliMain(build), ...args], { env: cliEnv, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout!.on('data', (d) => (out += d));
        child.stderr!.on('data', (d) => (out += d));
        const exited = new Promise<{ code: number | null; signal: string | null; out: string }>((r) => child.on('close', (code, signal) => r({ code, signal, out })));
        return { child, exited };
      };
      const migrate = () => run('migrate', '--source', 'sql', '--batch-size', '10');
      const count = (sql: string) => migrated.count(sql);
      try {
        const target = 1 + Math.floor(Math.random() * (MIGRATION_ROWS - 2));
        const first = migrate();
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
        const second = await migrate().exited;
        let expected = 0;
        for (let i = 0; i < MIGRATION_ROWS; i++) expected += legacySeedKind(i, {}) === 1 ? 1 : 2;
        const credentials = await count(`SELECT COUNT(*) AS n FROM cv_credentials WHERE tenant_id = '${tenant}' AND status <> 'deleted'`);
        const distinct = await count(`SELECT COUNT(*) AS n FROM (SELECT DISTINCT integration_id, connection_id, type FROM cv_credentials WHERE tenant_id = '${tenant}' AND status <> 'deleted') AS d`);
        const audited = await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = '${tenant}' AND action = 'migrate'`);
        if (second.code !== 0 || credentials !== expected || distinct !== credentials || audited !== credentials) {
          counts.migrationIncomplete++;
          examples.add(`${db}: migration killed at ~${target} rows: resume exit ${second.code}, ${credentials} credentials (${distinct} distinct, ${audited} audited) of ${expected}; ${second.out.slice(-200)}`);
        }
        if (credentials !== distinct) counts.duplicates++;
        // The migrated tenant's audit chain, with its vault anchors, by the CLI on the migrated database.
        const audit = await run('audit:verify', '--tenant', tenant).exited;
        if (audit.code !== 0 || !/"valid":\s*true/.test(audit.out)) {
          counts.auditBroken++;
          examples.add(`${db}: after a killed migration: audit:verify exit ${audit.code} ${audit.out.slice(-200)}`);
        }
        return midway;
      } finally {
        await migrated.drop();
      }
    };

    if (kinds.every((k) => k === 'migration')) {
      // Only migrations: no host process to set up (each trial has its own database).
      for (let n = 0; n < trials; n++) {
        byKind.migration = (byKind.migration ?? 0) + 1;
        if (await migrationTrial(counts.trials++)) counts.killedMidway++;
      }
      runs.push(`${database.label}: ${trials} migration trials`);
      await database.drop();
      return;
    }
    try {
      let providerKnown = false;
      const boot = async () => {
        trace(`crashes ${db}: boot`);
        host = await startReplica(build, `crash-${counts.trials}`, env, BOOT_TIMEOUT_MS);
        providerKnown = env !== baseEnv;
        trace(`crashes ${db}: booted`);
        return apiClient(host.url, key.key, 60_000);
      };
      // ── setup: a provider whose client secret is a system credential, credentials, OAuth connections, webhook secrets ──
      let call = await boot();
      const secret = await apiClient(host!.url, system.key)('POST', '/v1/credentials', { integrationId: 'idp-client', connectionId: 'client-secret', type: 'custom_secret', value: idp.clientSecret });
      if (secret.status !== 201) throw new Error(`setup: ${secret.status} ${secret.text}`);
      // Every later boot knows the provider; this process does not (no restart just for it: boots are slow).
      env = { ...baseEnv, OAUTH_PROVIDERS: JSON.stringify([{ integrationId: 'idp', issuer: idp.issuer, clientId: idp.clientId, clientSecret: { credentialId: secret.body.id, tenantId: 'system' }, allowInsecureRequests: true }]) };
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
      /** Per OAuth connection: the access token the host holds for it (as far as the client knows) and whether a refresh was unanswered at the kill. */
      const oauth = new Map<string, { token: string; inFlight: boolean }>();
      const authorize = async (conn: string) => {
        const tokens = await idp.authorize('openid');
        await must('POST', `/v1/oauth/connections/idp/${conn}/tokens`, tokens);
        oauth.set(conn, { token: tokens.access_token, inFlight: false });
      };
      /** OAuth connections need a host that knows the provider: the first one after setup, restarted for it only if no kill came before. */
      const ensureOAuth = async () => {
        if (oauth.size) return;
        if (!providerKnown) {
          await host!.stop();
          call = await boot();
        }
        for (let i = 0; i < 4; i++) await authorize(`u${i}`);
      };
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
          await Promise.all(
            [...oauth].map(async ([conn, o]) => {
              o.inFlight = true;
              const r = await c('POST', `/v1/oauth/connections/idp/${conn}/token-rejected`, {});
              if (r.status === 200) Object.assign(o, { token: r.body.accessToken, inFlight: false });
            }),
          );
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
        // Each credential on its own, a few at a time (the host is idle between trials).
        const all = [...known.values()];
        await forEachLimited(all.length, 8, async (n) => {
          const k = all[n];
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
        });
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
        // The refresh path (libs/oauth-refresh TokenRefresher) stores a rotated refresh token BEFORE the new
        // access token and before answering. So after a kill: the access token held is the one the client
        // last got, or the one issued by the refresh the kill interrupted; only a connection whose refresh
        // was unanswered at the kill may have a spent refresh token, and a spent one is detected
        // (invalid_grant → needs_reauth, 409 REAUTH_REQUIRED) and then fails fast without the provider.
        for (const [conn, o] of oauth) {
          if (o.inFlight) counts.oauthInFlight++;
          const held = await c('GET', `/v1/oauth/connections/idp/${conn}/access-token`);
          const token = held.body?.accessToken as string | undefined;
          if (held.status !== 200 || !token || (token !== o.token && !(o.inFlight && (await idp.isAccessTokenActive(token))))) {
            counts.oauthTokenUnknown++;
            examples.add(`after a ${kind} crash: OAuth connection ${conn} serves ${held.status === 200 ? 'an access token neither held nor issued by the interrupted refresh' : `${held.status} ${held.text.slice(0, 120)}`}`);
          }
          let r = await c('POST', `/v1/oauth/connections/idp/${conn}/token-rejected`, {});
          // The killed process's refresh-in-flight lease: no longer renewed, it lapses within LEASE_TTL_MS (its request
          // may have been answered; presenting the token before would be as risky). Waited out once, then a refresh.
          for (const until = Date.now() + LEASE_TTL_MS + 5_000; r.status === 503 && /awaiting the token endpoint/.test(r.text) && Date.now() < until; ) {
            counts.oauthLeaseWaits++;
            await sleep(1000);
            r = await c('POST', `/v1/oauth/connections/idp/${conn}/token-rejected`, {});
          }
          if (r.status === 200) {
            Object.assign(o, { token: r.body.accessToken, inFlight: false });
          } else if (r.status === 409 && r.body?.codeName === 'REAUTH_REQUIRED') {
            counts.oauthReauth++;
            if (!o.inFlight) {
              counts.oauthReauthOutsideWindow++;
              examples.add(`after a ${kind} crash: OAuth connection ${conn} needs re-authorisation though no refresh of it was unanswered at the kill`);
            }
            const calls = idp.refreshCalls;
            const again = await c('POST', `/v1/oauth/connections/idp/${conn}/token-rejected`, {});
            if (again.status !== 409 || again.body?.codeName !== 'REAUTH_REQUIRED' || idp.refreshCalls !== calls) {
              counts.oauthReauthNotFailFast++;
              examples.add(`after a ${kind} crash: OAuth connection ${conn} with a spent refresh token answered ${again.status} ${again.body?.codeName ?? ''} the second time (${idp.refreshCalls - calls} provider calls)`);
            }
            await authorize(conn);
          } else {
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

      let stoppedEarly: string | undefined;
      /**
       * A new host after a kill. One that does not start is a failure (counted, its output kept); a second
       * start is tried so the remaining trials still run; if that fails too this database's trials stop
       * here and the figures so far are reported.
       */
      const restart = async (kind: Kind): Promise<boolean> => {
        for (let attempt = 1; attempt <= 2; attempt++) {
          try {
            call = await boot();
            return true;
          } catch (e) {
            if (attempt === 1) counts.recoveryFailed++;
            examples.add(`${db}: the host did not start after a ${kind} crash (attempt ${attempt}): ${(e as Error).message.replace(/\s+/g, ' ').slice(0, 400)}`);
          }
        }
        stoppedEarly = `stopped after ${counts.trials} trials: the host did not start twice after a ${kind} crash`;
        host = undefined;
        return false;
      };
      /** How long each kind's last uninterrupted burst took, to aim the next kill inside one. */
      const burstMs = new Map<Kind, number>();
      for (let n = 0; n < trials; n++) {
        if (performance.now() > deadline) {
          stoppedEarly = `${n} of ${trials} trials: the time box (${p.crashes.minutes} minutes in all) ran out`;
          break;
        }
        const kind = kinds[n % kinds.length];
        const t = counts.trials++;
        byKind[kind] = (byKind[kind] ?? 0) + 1;
        if (kind === 'migration') {
          await host?.stop();
          host = undefined;
          if (await migrationTrial(t)) counts.killedMidway++;
          if (!(await restart(kind))) break;
          await verify(call, kind);
          continue;
        }
        if (kind === 'oauth-refresh') await ensureOAuth();
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
        if (!(await restart(kind))) break;
        trace(`crashes ${db}: verify after ${kind}`);
        await verify(call, kind);
        trace(`crashes ${db}: verified`);
      }
      if (stoppedEarly && !host) {
        runs.push(`${database.label}: ${stoppedEarly}`);
        return;
      }
      const audit = await call('POST', '/v1/audit/verify', {});
      if (audit.body?.valid !== true) counts.auditBroken++;
      runs.push(`${database.label}: ${stoppedEarly ?? `${trials} trials`}, ${known.size} credentials and ${oauth.size} OAuth connections checked after each, final audit verify ${audit.status} ${audit.body?.valid === true ? 'valid' : 'NOT valid'}`);
    } finally {
      await host?.stop();
      await database.drop();
    }
  };

  try {
    const perDb = Math.ceil(p.crashes.trials / p.crashes.databases.length);
    // A time box is shared out: each database gets what the ones before it left, over the ones still to run.
    const end = p.crashes.minutes ? started + p.crashes.minutes * 60_000 : Infinity;
    for (const [i, db] of p.crashes.databases.entries()) await onDatabase(db, perDb, performance.now() + (end - performance.now()) / (p.crashes.databases.length - i));
    return {
      part: 'Crashes',
      profile: p.name,
      method:
        "The host runs as its own process (`node apps/api/src/main.js`; per database in turn: SQLite, or PostgreSQL with Redis as cache L2, eviction bus and shared state — a kill can leave a sealed L2 entry behind; the local vault over HTTPS as an external vault, an OAuth provider at oidc-provider whose client secret is a system credential). Trials cycle through five kinds; in each, the client starts a burst of concurrent requests — 8 stores; 4 chains of 3 rotations; a refresh of 4 OAuth connections (token-rejected, rotating refresh tokens at the provider); stage → activate of 2 webhook secrets — and the process is killed with SIGKILL at a random moment up to 90% of the duration of that kind's last burst (400 ms for the first); a migration trial runs `cli migrate` over 120 legacy rows in its own process (and its own host database: checkpoints are keyed by legacy row) and kills it once a random number of checkpoints is written, then runs it again. After each kill a new host process starts on the same database and every credential the client knows is read: its value must be the last acknowledged one or one whose answer the kill swallowed (or the previous one), every acknowledged version must read back, no connection may hold two credentials of one type, an unacknowledged store is absent or holds the value sent, each webhook must verify with the current secret and a leftover staged secret be discarded and a new rotation complete, the tenant's audit chain must verify; a resumed migration must exit 0 with exactly one credential per legacy token and one MIGRATE audit row each, and `cli audit:verify` must find the migrated tenant's chain (and its vault anchors) valid. OAuth: the refresh path stores a rotated refresh token before the new access token and before it answers (libs/oauth-refresh TokenRefresher), so the bound checked is: every connection serves the access token the client last got or one issued by the refresh the kill interrupted (active at the provider); it refreshes again (200) or, only if its refresh was unanswered at the kill (the provider rotated, the kill came before the store), answers 409 REAUTH_REQUIRED — and then again 409 without calling the provider; such a connection is re-authorised to go on.",
      ran: `${counts.trials} trials (${Object.entries(byKind)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')}), ${counts.killedMidway} of them killed before the burst (or the migration) had finished; ${runs.join(' · ')}.`,
      figures: [
        info('trials', counts.trials),
        info('kills before the work finished', counts.killedMidway),
        bounded('reads of a value never acknowledged nor in flight', counts.wrongValue, '=', 0),
        bounded('acknowledged versions lost', counts.lostAcked, '=', 0),
        bounded('duplicate credentials', counts.duplicates, '=', 0),
        bounded('OAuth connections failing otherwise than re-authorisation after a crash', counts.oauthBroken, '=', 0),
        bounded('OAuth access tokens served after a crash that the client never got nor the interrupted refresh issued', counts.oauthTokenUnknown, '=', 0),
        info('OAuth refreshes unanswered at a kill', counts.oauthInFlight),
        info('seconds an OAuth refresh after a crash waited for the killed process\'s refresh lease to lapse (summed)', counts.oauthLeaseWaits),
        info('OAuth connections needing re-authorisation after a crash (refresh token rotated at the provider, kill before it was stored)', counts.oauthReauth),
        bounded('OAuth re-authorisations of a connection whose refresh was answered or not running at the kill', counts.oauthReauthOutsideWindow, '=', 0),
        bounded('spent refresh tokens not failing fast (second call not 409 REAUTH_REQUIRED, or the provider called)', counts.oauthReauthNotFailFast, '=', 0),
        bounded('webhook secrets not verifying or not rotatable after a crash', counts.webhookBroken, '=', 0),
        bounded('audit chain verifications failed', counts.auditBroken, '=', 0),
        bounded('migrations not complete and exact on resume', counts.migrationIncomplete, '=', 0),
        bounded('host restarts failed', counts.recoveryFailed, '=', 0),
      ],
      examples: examples.list,
      durationS: Math.round((performance.now() - started) / 1000),
    };
  } finally {
    build.remove();
    await idp.close();
    await vault.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
