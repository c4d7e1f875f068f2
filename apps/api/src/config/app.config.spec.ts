import { resolvePersistenceOptions } from '@app/common';
import { resolveAuditOptions } from '@app/audit';
import { DEFAULT_WEBHOOK_SECRETS_OPTIONS, notificationHostOptions, resolveNotificationOptions, resolveWebhookSecretsOptions } from '@app/rotation';
import type { EmbeddedVault } from '../vault/embedded-vault';
import { keyVaultOptions } from '../vault/vault.module';
import { databaseOptions, persistenceOptions } from '../database/database.options';
import { ConfigValidationError, loadAppConfig, loadAppConfigReadingFiles } from './app.config';

/** The problems of a refused environment, as one text. */
function problemsOf(env: Record<string, string>): string {
  try {
    loadAppConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigValidationError);
    return (e as ConfigValidationError).message;
  }
  throw new Error('expected a validation error');
}

describe('loadAppConfig', () => {
  it('defaults to the embedded vault and a SQLite file under ./data', () => {
    const cfg = loadAppConfig({}, '/srv/app');
    expect(cfg.database).toEqual({ type: 'sqlite', path: '/srv/app/data/credential-vault.sqlite', synchronous: 'full', walWorker: false, walAutocheckpoint: 1000 });
    expect(cfg.keyVault).toMatchObject({ mode: 'embedded', emulatorDataDir: '/srv/app/data/vault', emulatorPort: 8443 });
    expect(cfg.http).toMatchObject({ host: '127.0.0.1', port: 3000 });
    expect(cfg.metrics.enabled).toBe(true);
  });

  it('uses PostgreSQL and an external vault when configured', () => {
    const cfg = loadAppConfig({
      DATABASE_TYPE: 'postgres',
      DATABASE_URL: 'postgres://u@db:5432/cv',
      KEY_VAULT_URL: 'https://myvault.vault.azure.net',
      KEY_VAULT_CREDENTIAL: 'managed-identity',
      AZURE_CLIENT_ID: 'cid',
      METRICS_ENABLED: 'false',
    });
    expect(cfg.database).toMatchObject({ type: 'postgres', url: 'postgres://u@db:5432/cv', poolSize: 10, lockSessions: 8 });
    expect(cfg.keyVault).toMatchObject({ mode: 'external', url: 'https://myvault.vault.azure.net', credential: 'managed-identity', clientId: 'cid' });
    expect(cfg.metrics.enabled).toBe(false);
  });

  it('DATABASE_LOCK_SESSIONS sizes the lock pool (1..100, PostgreSQL only) and reaches PersistenceModule', () => {
    const pg = { DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://u@db:5432/cv' };
    const cfg = loadAppConfig({ ...pg, DATABASE_LOCK_SESSIONS: '20' });
    expect(cfg.database).toMatchObject({ lockSessions: 20 });
    expect(persistenceOptions(cfg, { dispatch: true })).toEqual({ outbox: { dispatch: true, handlerTimeoutMs: 10_000 }, locks: { maxSessions: 20, heartbeatMs: 10_000, heartbeatTimeoutMs: 5000 } });
    expect(persistenceOptions(loadAppConfig({}), { dispatch: true })).toEqual({ outbox: { dispatch: true, handlerTimeoutMs: 10_000 }, locks: {} });
    for (const bad of ['0', '101', '2.5', 'many']) expect(problemsOf({ ...pg, DATABASE_LOCK_SESSIONS: bad })).toMatch(/- DATABASE_LOCK_SESSIONS: /);
    expect(problemsOf({ DATABASE_LOCK_SESSIONS: '8' })).toMatch(/DATABASE_LOCK_SESSIONS: applies only with DATABASE_TYPE=postgres/);
  });

  it('DATABASE_LOCK_HEARTBEAT_MS and _TIMEOUT_MS check held locks\' sessions (PostgreSQL only, deadline below interval) and reach PersistenceModule', () => {
    const pg = { DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://u@db:5432/cv' };
    expect(loadAppConfig(pg).database).toMatchObject({ lockHeartbeatMs: 10_000, lockHeartbeatTimeoutMs: 5000 });
    const cfg = loadAppConfig({ ...pg, DATABASE_LOCK_HEARTBEAT_MS: '3000', DATABASE_LOCK_HEARTBEAT_TIMEOUT_MS: '1000' });
    expect(persistenceOptions(cfg, { dispatch: true }).locks).toEqual({ maxSessions: 8, heartbeatMs: 3000, heartbeatTimeoutMs: 1000 });
    expect(resolvePersistenceOptions(persistenceOptions(cfg, { dispatch: true })).locks).toEqual({ maxSessions: 8, heartbeatMs: 3000, heartbeatTimeoutMs: 1000 });
    for (const bad of ['0', '99', '600001', '1.5', '10s']) expect(problemsOf({ ...pg, DATABASE_LOCK_HEARTBEAT_MS: bad })).toMatch(/- DATABASE_LOCK_HEARTBEAT_MS: /);
    for (const bad of ['0', '49', '1.5']) expect(problemsOf({ ...pg, DATABASE_LOCK_HEARTBEAT_TIMEOUT_MS: bad })).toMatch(/- DATABASE_LOCK_HEARTBEAT_TIMEOUT_MS: /);
    expect(problemsOf({ ...pg, DATABASE_LOCK_HEARTBEAT_MS: '5000' })).toMatch(/- DATABASE_LOCK_HEARTBEAT_TIMEOUT_MS: must be below DATABASE_LOCK_HEARTBEAT_MS/);
    expect(problemsOf({ DATABASE_LOCK_HEARTBEAT_MS: '3000' })).toMatch(/DATABASE_LOCK_HEARTBEAT_MS: applies only with DATABASE_TYPE=postgres/);
    // On SQLite that is the one problem: the default deadline (5 s) is not also held against the 3 s interval.
    expect(problemsOf({ DATABASE_LOCK_HEARTBEAT_MS: '3000' })).not.toMatch(/must be below DATABASE_LOCK_HEARTBEAT_MS/);
    expect(problemsOf({ DATABASE_LOCK_HEARTBEAT_TIMEOUT_MS: '1000' })).toMatch(/DATABASE_LOCK_HEARTBEAT_TIMEOUT_MS: applies only with DATABASE_TYPE=postgres/);
  });

  it('OUTBOX_HANDLER_TIMEOUT_MS bounds each outbox handler (1 s..10 min) and reaches PersistenceModule; with notifications on it leaves room for their send wait', () => {
    const cfg = loadAppConfig({ OUTBOX_HANDLER_TIMEOUT_MS: '30000' });
    expect(cfg.outbox).toEqual({ handlerTimeoutMs: 30_000 });
    expect(resolvePersistenceOptions(persistenceOptions(cfg, { dispatch: true })).outbox).toMatchObject({ dispatch: true, handlerTimeoutMs: 30_000 });
    for (const bad of ['999', '600001', '1.5', '10s']) expect(problemsOf({ OUTBOX_HANDLER_TIMEOUT_MS: bad })).toMatch(/- OUTBOX_HANDLER_TIMEOUT_MS: /);
    // Listed with the other rules' problems; accepted when notifications are off (no send wait inside the handler).
    const msg = problemsOf({ OUTBOX_HANDLER_TIMEOUT_MS: '1500', NOTIFICATIONS_RETRY_BASE_MS: '90000', NOTIFICATIONS_RETRY_MAX_MS: '60000' });
    expect(msg).toMatch(/- NOTIFICATIONS_RETRY_BASE_MS: must not exceed/);
    expect(msg).toMatch(/- NOTIFICATIONS_SEND_WAIT_MS: must be at least 1000 less than OUTBOX_HANDLER_TIMEOUT_MS while NOTIFICATIONS_ENABLED/);
    expect(loadAppConfig({ OUTBOX_HANDLER_TIMEOUT_MS: '1500', NOTIFICATIONS_ENABLED: 'false' }).outbox.handlerTimeoutMs).toBe(1500);
    // What the host accepts, RotationModule accepts against the same outbox at start.
    const least = loadAppConfig({ OUTBOX_HANDLER_TIMEOUT_MS: '2000' });
    const outbox = notificationHostOptions(resolvePersistenceOptions(persistenceOptions(least, { dispatch: true })));
    expect(() => resolveNotificationOptions(least.rotation.notifications, outbox)).not.toThrow();
    expect(() => resolveNotificationOptions(least.rotation.notifications, { outboxHandlerTimeoutMs: 1999 })).toThrow(/sendWaitMs/);
  });

  it('bounds PostgreSQL work by default (40 s query deadline, 30 s statement timeout, 60 s idle in a transaction); each variable checked, 0 turns it off', () => {
    const pg = { DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://u@db:5432/cv' };
    expect(loadAppConfig(pg).database).toMatchObject({ queryTimeoutMs: 40_000, statementTimeoutMs: 30_000, idleInTransactionTimeoutMs: 60_000, probeAfterMs: 5_000 });
    expect(loadAppConfig({ ...pg, DATABASE_PROBE_AFTER_MS: '0' }).database).toMatchObject({ probeAfterMs: 0 });
    expect(problemsOf({ ...pg, DATABASE_PROBE_AFTER_MS: '50' })).toMatch(/- DATABASE_PROBE_AFTER_MS: must be 0 \(off\) or at least 100/);
    const extra = (env: Record<string, string>) => (databaseOptions(loadAppConfig({ ...pg, ...env })) as { extra: Record<string, unknown> }).extra;
    expect(extra({})).toMatchObject({ statement_timeout: 30_000, idle_in_transaction_session_timeout: 60_000, Client: expect.any(Function) });
    const off = extra({ DATABASE_QUERY_TIMEOUT_MS: '0', DATABASE_STATEMENT_TIMEOUT_MS: '0', DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '0' });
    expect(off).not.toHaveProperty('statement_timeout');
    expect(off).not.toHaveProperty('idle_in_transaction_session_timeout');
    expect(off).not.toHaveProperty('Client');
    // One error listing every problem.
    const problems = problemsOf({ ...pg, DATABASE_QUERY_TIMEOUT_MS: '20000', DATABASE_STATEMENT_TIMEOUT_MS: '50', DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: 'soon' });
    expect(problems).toMatch(/- DATABASE_STATEMENT_TIMEOUT_MS: must be 0 \(off\) or at least 100/);
    expect(problems).toMatch(/- DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: must be a whole number/);
    expect(problemsOf({ ...pg, DATABASE_QUERY_TIMEOUT_MS: '30000' })).toMatch(/- DATABASE_QUERY_TIMEOUT_MS: must exceed DATABASE_STATEMENT_TIMEOUT_MS/);
    expect(loadAppConfig({ ...pg, DATABASE_QUERY_TIMEOUT_MS: '30000', DATABASE_STATEMENT_TIMEOUT_MS: '0' }).database).toMatchObject({ queryTimeoutMs: 30_000, statementTimeoutMs: 0 });
    expect(problemsOf({ DATABASE_STATEMENT_TIMEOUT_MS: '1000' })).toMatch(/DATABASE_STATEMENT_TIMEOUT_MS: applies only with DATABASE_TYPE=postgres/);
  });

  it('NOTIFICATIONS_SEND_WAIT_MS sets how long the notification handler waits for a send (0..120000), inside OUTBOX_HANDLER_TIMEOUT_MS less 1 s', () => {
    expect(loadAppConfig({}).rotation.notifications.sendWaitMs).toBe(1000);
    const cfg = loadAppConfig({ NOTIFICATIONS_SEND_WAIT_MS: '4000' });
    expect(resolveNotificationOptions(cfg.rotation.notifications).sendWaitMs).toBe(4000);
    expect(loadAppConfig({ NOTIFICATIONS_SEND_WAIT_MS: '0' }).rotation.notifications.sendWaitMs).toBe(0);
    for (const bad of ['120001', '-1', '1.5', '2s']) expect(problemsOf({ NOTIFICATIONS_SEND_WAIT_MS: bad })).toMatch(/- NOTIFICATIONS_SEND_WAIT_MS: /);
    // Its rule with the outbox's bound is listed with every other problem, and names no value.
    const msg = problemsOf({ NOTIFICATIONS_SEND_WAIT_MS: '9500', NOTIFICATIONS_RETRY_BASE_MS: '90000', NOTIFICATIONS_RETRY_MAX_MS: '60000', NOTIFICATION_SEND_WAIT_MS: '500' });
    expect(msg).toMatch(/- NOTIFICATIONS_SEND_WAIT_MS: must be at least 1000 less than OUTBOX_HANDLER_TIMEOUT_MS while NOTIFICATIONS_ENABLED/);
    expect(msg).toMatch(/- NOTIFICATIONS_RETRY_BASE_MS: must not exceed/);
    expect(msg).toMatch(/- NOTIFICATION_SEND_WAIT_MS: is not a variable of this host; did you mean NOTIFICATIONS_SEND_WAIT_MS\?/);
    expect(msg).not.toContain('9500');
    // Raising the outbox's bound, or turning notifications off, makes it valid.
    expect(loadAppConfig({ NOTIFICATIONS_SEND_WAIT_MS: '9500', NOTIFICATIONS_ENABLED: 'false' }).rotation.notifications.sendWaitMs).toBe(9500);
    const raised = loadAppConfig({ NOTIFICATIONS_SEND_WAIT_MS: '9500', OUTBOX_HANDLER_TIMEOUT_MS: '10500' });
    // What the host accepts, RotationModule accepts against the same outbox at start; one ms more it refuses.
    const outbox = notificationHostOptions(resolvePersistenceOptions(persistenceOptions(raised, { dispatch: true })));
    expect(resolveNotificationOptions(raised.rotation.notifications, outbox).sendWaitMs).toBe(9500);
    expect(problemsOf({ NOTIFICATIONS_SEND_WAIT_MS: '9501', OUTBOX_HANDLER_TIMEOUT_MS: '10500' })).toMatch(/- NOTIFICATIONS_SEND_WAIT_MS: must be at least 1000 less/);
  });

  it('bounds each audit retention statement by 30 min by default (0: no bound), into AuditModule options', () => {
    const pg = { DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://u@db:5432/cv' };
    expect(loadAppConfig(pg).audit.retention.statementTimeoutMs).toBe(1_800_000);
    expect(resolveAuditOptions(loadAppConfig({ ...pg, AUDIT_RETENTION_STATEMENT_TIMEOUT_MS: '0' }).audit).retention.statementTimeoutMs).toBe(0);
    expect(problemsOf({ ...pg, AUDIT_RETENTION_STATEMENT_TIMEOUT_MS: '500' })).toMatch(/- AUDIT_RETENTION_STATEMENT_TIMEOUT_MS: must be 0 \(no bound\) or at least 1000/);
    expect(problemsOf({ AUDIT_RETENTION_STATEMENT_TIMEOUT_MS: '60000' })).toMatch(/AUDIT_RETENTION_STATEMENT_TIMEOUT_MS: applies only with DATABASE_TYPE=postgres/);
  });

  it('lists every problem at once, naming the variable and what to fix', () => {
    let err: ConfigValidationError | undefined;
    try {
      loadAppConfig({ PORT: 'eighty', DATABASE_TYPE: 'postgres', LOG_LEVEL: 'loud' });
    } catch (e) {
      err = e as ConfigValidationError;
    }
    expect(err).toBeInstanceOf(ConfigValidationError);
    expect(err!.problems.join('\n')).toMatch(/PORT/);
    expect(err!.problems.join('\n')).toMatch(/DATABASE_URL: is required when DATABASE_TYPE=postgres/);
    expect(err!.problems.join('\n')).toMatch(/LOG_LEVEL/);
    expect(err!.message).toMatch(/README/);
  });

  it("refuses a DATABASE_URL the PostgreSQL driver cannot read (a bad %-escape in its user or password), naming it without its value", () => {
    const shown = problemsOf({ DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://cv:Hunter2%zz-pw@127.0.0.1:5432/cv' });
    expect(shown).toMatch(/DATABASE_URL: .*percent-encoded/);
    expect(shown).not.toContain('Hunter2');
    // An escaped one is fine: the driver decodes it.
    expect(loadAppConfig({ DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://cv:a%20b%25c@127.0.0.1:5432/cv' })).toBeDefined();
  });

  it("takes every PostgreSQL URL form the driver reads (socket host, IPv6, postgresql:, options, no password), and names the database when its %-escape is bad", () => {
    for (const url of [
      'postgres:///cv?host=/var/run/postgresql',
      'postgres://cv@%2Fvar%2Frun%2Fpostgresql/cv',
      'postgresql://cv:pw@[::1]:5432/cv',
      'postgres://cv@db.example.com/cv?sslmode=require&options=-c%20statement_timeout%3D5000',
    ]) {
      expect(loadAppConfig({ DATABASE_TYPE: 'postgres', DATABASE_URL: url })).toBeDefined();
    }
    // pg reads the database name with decodeURI too: the message must not send the operator to the user, password or host.
    expect(problemsOf({ DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://cv@127.0.0.1:5432/cv%zz' })).toMatch(/DATABASE_URL: .*database name/);
  });

  it('refuses what an operator would otherwise find out in production: typos, other backends\' variables, bad cron, loose numbers, bad providers', () => {
    const problemsOf = (env: Record<string, string>) => {
      try {
        loadAppConfig(env);
        return [];
      } catch (e) {
        return (e as ConfigValidationError).problems;
      }
    };
    const all = problemsOf({
      DATABSE_TYPE: 'postgres', // a typo: the host would run on SQLite
      DATABASE_URL: 'postgres://u:pw@db/x', // PostgreSQL's variable, on SQLite
      AZURE_CLIENT_SECRET: 'hunter2-secret', // an identity without KEY_VAULT_URL
      OAUTH_PROACTIVE_CRON: '* * * * * * *',
      ROTATION_CHECK_CRON: 'bogus cron here',
      AUDIT_RETENTION_CRON: 'every day at 3',
      PORT: ' ',
      SMTP_PORT: '1e3',
      OAUTH_PROVIDERS: JSON.stringify([{ integrationId: 'x', tokenEndpoint: 'https://idp.example/token', clientId: 'c', clientSecret: 'plain-client-secret' }]),
    }).join('\n');
    expect(all).toMatch(/DATABSE_TYPE: is not a variable of this host; did you mean DATABASE_TYPE\?/);
    expect(all).toMatch(/DATABASE_URL: applies only with DATABASE_TYPE=postgres/);
    expect(all).toMatch(/AZURE_CLIENT_SECRET: applies only with KEY_VAULT_URL/);
    for (const v of ['OAUTH_PROACTIVE_CRON', 'ROTATION_CHECK_CRON', 'AUDIT_RETENTION_CRON']) expect(all).toMatch(new RegExp(`${v}: must be a cron expression`));
    expect(all).toMatch(/PORT: must be a whole number/);
    expect(all).toMatch(/SMTP_PORT: must be a whole number/);
    expect(all).toMatch(/OAUTH_PROVIDERS: .*clientSecret/);
    for (const value of ['pw@db', 'hunter2', 'plain-client-secret']) expect(all).not.toContain(value);
    // The usual system variables are never taken for ours, and gRPC on every address clashes with the HTTP port.
    expect(problemsOf({ HOME: '/root', HOSTNAME: 'box', PWD: '/', NODE_OPTIONS: '--max-old-space-size=512' })).toEqual([]);
    expect(problemsOf({ GRPC_ENABLED: 'true', HOST: '0.0.0.0', PORT: '3194', GRPC_PORT: '3194' }).join('\n')).toMatch(/GRPC_PORT: must differ from PORT/);
  });

  // Both were accepted and ignored: the operator believed the host kept its data in that file, or in that vault's directory.
  it("refuses SQLite's variables on PostgreSQL and the embedded vault's beside KEY_VAULT_URL, with every other problem", () => {
    const pg = { DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://u@db:5432/cv' };
    const vault = { KEY_VAULT_URL: 'https://myvault.vault.azure.net', KEY_VAULT_CREDENTIAL: 'managed-identity' };
    const sqlite = {
      DATABASE_PATH: '/srv/cv.sqlite',
      DATABASE_SQLITE_SYNCHRONOUS: 'normal',
      DATABASE_SQLITE_WRITE_WORKER: 'false',
      DATABASE_SQLITE_WAL_WORKER: 'true',
      DATABASE_SQLITE_WAL_AUTOCHECKPOINT: '4000',
    };
    const problems = problemsOf({ ...pg, ...vault, ...sqlite, EMULATOR_DATA_DIR: '/srv/vault', EMULATOR_PORT: '9443', PORT: 'x' });
    for (const v of Object.keys(sqlite)) {
      expect(problems).toMatch(new RegExp(`^ {2}- ${v}: applies only to SQLite \\(the database is PostgreSQL now, DATABASE_TYPE=postgres\\); unset ${v}$`, 'm'));
    }
    for (const v of ['EMULATOR_DATA_DIR', 'EMULATOR_PORT']) {
      expect(problems).toMatch(new RegExp(`^ {2}- ${v}: applies only to the embedded local vault, used without KEY_VAULT_URL \\(the vault is KEY_VAULT_URL's now\\); unset ${v}$`, 'm'));
    }
    expect(problems).toMatch(/^ {2}- PORT: must be a whole number/m);
    expect(problems).not.toMatch(/\/srv|9443|4000/);
    // Where they apply they are taken, and the other backend's defaults are not named.
    expect(loadAppConfig({ ...sqlite, EMULATOR_DATA_DIR: '/srv/vault', EMULATOR_PORT: '9443' }).keyVault).toMatchObject({ mode: 'embedded', emulatorDataDir: '/srv/vault', emulatorPort: 9443 });
    expect(loadAppConfig({ ...pg, ...vault }).database.type).toBe('postgres');
  });

  // Ignored too: SQLite has no pool to probe nor named statements, and the embedded vault brings its own CA and check.
  it("refuses PostgreSQL's probe and named statements on SQLite, and an external vault's CA and challenge switch without KEY_VAULT_URL", () => {
    const problems = problemsOf({
      DATABASE_PROBE_AFTER_MS: '0',
      DATABASE_PREPARED_STATEMENTS: 'false',
      KEY_VAULT_CA_CERT_PATH: '/srv/vault-ca.pem',
      KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
    });
    for (const v of ['DATABASE_PROBE_AFTER_MS', 'DATABASE_PREPARED_STATEMENTS']) expect(problems).toMatch(new RegExp(`^ {2}- ${v}: applies only with DATABASE_TYPE=postgres `, 'm'));
    for (const v of ['KEY_VAULT_CA_CERT_PATH', 'KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION']) expect(problems).toMatch(new RegExp(`^ {2}- ${v}: applies only with KEY_VAULT_URL `, 'm'));
    expect(problems).not.toContain('/srv');
  });

  // A mistyped DATABASE_TYPE was judged as SQLite: the operator read "the database is SQLite now" beside every
  // PostgreSQL variable, as if those were the mistake. Which backend's variables are out of place is unknown then.
  it('with a DATABASE_TYPE it does not know, names only that, not the variables of either database as out of place', () => {
    for (const type of ['postgress', 'Postgres', 'mysql']) {
      const problems = problemsOf({ DATABASE_TYPE: type, DATABASE_URL: 'postgres://u@db:5432/cv', DATABASE_POOL_SIZE: '5', DATABASE_PATH: '/srv/cv.sqlite' });
      expect(problems).toMatch(/^ {2}- DATABASE_TYPE: /m);
      expect(problems).not.toMatch(/applies only/);
      expect(problems).not.toContain(type);
    }
    // A valid type still refuses the other database's variables.
    expect(problemsOf({ DATABASE_TYPE: 'sqlite', DATABASE_URL: 'postgres://u@db:5432/cv' })).toMatch(/DATABASE_URL: applies only with DATABASE_TYPE=postgres/);
  });

  it('says the range a whole number out of range must be in, in its own words', () => {
    const problems = problemsOf({ GRPC_PORT: '0', SMTP_PORT: '70000' });
    expect(problems).toMatch(/^ {2}- GRPC_PORT: must be a whole number in 1\.\.65535$/m);
    expect(problems).toMatch(/^ {2}- SMTP_PORT: must be a whole number in 1\.\.65535$/m);
    expect(problems).not.toMatch(/Too (small|big)|expected number/);
  });

  it('lists the rules between variables with the values that do not parse, none read against a wrong value\'s default', () => {
    const problems = problemsOf({ PORT: 'x', CACHE_TIER: 'redis', GRPC_ENABLED: 'true', GRPC_PORT: '3000', SMTP_SECURE: 'true', SMTP_IGNORE_TLS: 'true' });
    expect(problems).toMatch(/^ {2}- PORT: must be a whole number/m);
    expect(problems).toMatch(/^ {2}- CACHE_TIER: redis needs REDIS_URL/m);
    expect(problems).toMatch(/^ {2}- SMTP_IGNORE_TLS: cannot be combined with SMTP_SECURE/m);
    // PORT=x left at its default 3000 would clash with GRPC_PORT=3000: not the operator's problem.
    expect(problems).not.toMatch(/GRPC_PORT: must differ/);
  });

  it("reads no rule against a wrong value's default, even one whose message does not name that variable", () => {
    const only = (env: Record<string, string>, variable: string) =>
      expect(problemsOf(env).split('\n').filter((l) => l.startsWith('  - '))).toEqual([expect.stringMatching(new RegExp(`^ {2}- ${variable}: `))]);
    // HOST meant 10.0.0.5, beside gRPC on 127.0.0.1, same port: HOST's default 127.0.0.1 is GRPC_HOST.
    only({ HOST: 'http://10.0.0.5', GRPC_ENABLED: 'true', GRPC_HOST: '127.0.0.1', PORT: '3000', GRPC_PORT: '3000' }, 'HOST');
    // An http:// vault URL is refused: without it the embedded vault (EMULATOR_PORT 8443 by default) was taken to be in use.
    only({ KEY_VAULT_URL: 'http://cv.vault.azure.net', PORT: '8443' }, 'KEY_VAULT_URL');
    // CACHE_TIER=Memory is refused: without it REDIS_URL made the tier redis, which CACHE_INVALIDATION=none cannot go with.
    only({ CACHE_TIER: 'Memory', REDIS_URL: 'redis://127.0.0.1:6379', CACHE_INVALIDATION: 'none' }, 'CACHE_TIER');
  });

  it('takes a DATABASE_URL of PostgreSQL only (postgres:, postgresql:, socket:), naming the variable, never its value', () => {
    const accepted = [
      'postgres://u@db:5432/x',
      'postgresql://u:p@db/x?sslmode=require',
      'socket:/var/run/postgresql?db=x',
      // A Unix socket as libpq and pg write it: no host before the path, the socket's directory in ?host=.
      'postgresql://u@/x?host=/var/run/postgresql',
      'postgresql:///x?host=/var/run/postgresql',
      'socket://u:p@/var/run/postgresql?db=x',
      'postgres://u@%2Fvar%2Frun%2Fpostgresql/x',
    ];
    for (const url of accepted) expect(loadAppConfig({ DATABASE_TYPE: 'postgres', DATABASE_URL: url }).database).toMatchObject({ type: 'postgres', url });
    // Read from a file or a secret, a URL often ends with a newline: the driver is given it without.
    expect(loadAppConfig({ DATABASE_TYPE: 'postgres', DATABASE_URL: ' postgresql://u@/x?host=/var/run/postgresql\n' }).database).toMatchObject({
      url: 'postgresql://u@/x?host=/var/run/postgresql',
    });
    for (const url of ['redis://:pw-secret@127.0.0.1:6379/0', 'mysql://u:pw-secret@db/x', 'https://db.example/x']) {
      const problems = problemsOf({ DATABASE_TYPE: 'postgres', DATABASE_URL: url });
      expect(problems).toMatch(/^ {2}- DATABASE_URL: must be a postgres:\/\/ or postgresql:\/\/ URL/m);
      expect(problems).not.toContain('pw-secret');
    }
  });

  it('listens on an IP address or a host name, and refuses any other HOST or GRPC_HOST (a URL, a port, a space)', () => {
    for (const host of ['0.0.0.0', '::', '::1', '127.0.0.1', 'localhost', 'api_1', 'cv-api.internal.example.'])
      expect(loadAppConfig({ HOST: host, GRPC_ENABLED: 'true', GRPC_HOST: host, GRPC_PORT: '3195' }).grpc).toMatchObject({ enabled: true, host });
    for (const host of ['http://0.0.0.0', '0.0.0.0:3000', '[::1]', 'bad host', '-lead.example']) {
      const problems = problemsOf({ HOST: host, GRPC_HOST: host });
      expect(problems).toMatch(/^ {2}- HOST: must be an IP address/m);
      expect(problems).toMatch(/^ {2}- GRPC_HOST: must be an IP address/m);
    }
  });

  it('refuses one of its variables spelt in another case, or without its _MS unit, with a "did you mean" (else ignored: the default ran)', () => {
    const msg = problemsOf({ log_level: 'debug', Shutdown_Drain_Ms: '100', CACHE_TTL: '1000', KEY_VAULT_TIMEOUT: '5000', database_pathh: './x.sqlite' });
    expect(msg).toMatch(/- log_level: is not a variable of this host; did you mean LOG_LEVEL\?/);
    expect(msg).toMatch(/- Shutdown_Drain_Ms: is not a variable of this host; did you mean SHUTDOWN_DRAIN_MS\?/);
    expect(msg).toMatch(/- CACHE_TTL: is not a variable of this host; did you mean CACHE_TTL_MS\?/);
    expect(msg).toMatch(/- KEY_VAULT_TIMEOUT: is not a variable of this host; did you mean KEY_VAULT_TIMEOUT_MS\?/);
    expect(msg).toMatch(/- database_pathh: is not a variable of this host; did you mean DATABASE_PATH\?/);
    // Lower-case system variables stay someone else's.
    expect(loadAppConfig({ http_proxy: 'http://proxy:3128', no_proxy: 'localhost', npm_config_cache: '/tmp/npm' }).http.port).toBe(3000);
  });

  it('AUTH_API_KEYS: entries may share an id (a key rotation), but not across tenants: the id is one client', () => {
    const entry = (tenant: string, digit: string) => ({ id: 'ops', tenant, scopes: ['credentials:read'], sha256: digit.repeat(64) });
    expect(loadAppConfig({ AUTH_API_KEYS: JSON.stringify([entry('acme', 'a'), entry('acme', 'b')]) }).auth.apiKeys).toHaveLength(2);
    const msg = problemsOf({ AUTH_API_KEYS: JSON.stringify([entry('acme', 'a'), entry('acme', 'b'), entry('globex', 'c')]) });
    expect(msg).toMatch(/- AUTH_API_KEYS: entries #1 and #3 share the id ops but not the tenant/);
  });

  it('requires the service principal variables for client-secret auth, without echoing the secret', () => {
    const secret = 'super-secret-value-123';
    try {
      loadAppConfig({ KEY_VAULT_URL: 'https://v.vault.azure.net', KEY_VAULT_CREDENTIAL: 'client-secret', AZURE_CLIENT_SECRET: secret });
      throw new Error('expected a validation error');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigValidationError);
      const msg = (e as Error).message;
      expect(msg).toMatch(/AZURE_TENANT_ID: is required when KEY_VAULT_CREDENTIAL=client-secret/);
      expect(msg).toMatch(/AZURE_CLIENT_ID/);
      expect(msg).not.toContain(secret);
    }
  });

  it('refuses an http:// KEY_VAULT_URL at start (no Key Vault speaks plain HTTP), without repeating it', () => {
    const msg = problemsOf({ KEY_VAULT_URL: 'http://127.0.0.1:8443', PORT: 'x' });
    expect(msg).toContain('KEY_VAULT_URL: must be an https:// URL');
    expect(msg).toContain('PORT');
    expect(msg).not.toContain('127.0.0.1:8443');
  });

  it('refuses the embedded development vault in production', () => {
    expect(() => loadAppConfig({ NODE_ENV: 'production' })).toThrow(/KEY_VAULT_URL: is required in production/);
  });

  it('refuses production without an API key or a JWT issuer, an empty AUTH_API_KEYS included (every request would be 401)', () => {
    const vault = { NODE_ENV: 'production', KEY_VAULT_URL: 'https://myvault.vault.azure.net' };
    for (const keys of [{}, { AUTH_API_KEYS: '[]' }] as Array<Record<string, string>>) {
      expect(problemsOf({ ...vault, ...keys })).toMatch(/- AUTH_JWT_ISSUER or AUTH_API_KEYS: production needs an authentication method/);
    }
    const entry = { id: 'ops', tenant: 'acme', scopes: ['credentials:read'], sha256: 'a'.repeat(64) };
    expect(loadAppConfig({ ...vault, AUTH_API_KEYS: JSON.stringify([entry]) }).auth.apiKeys).toHaveLength(1);
  });

  it("refuses the local vault's switches for a vault on another host in production, naming each variable", () => {
    const devVault = {
      KEY_VAULT_URL: 'https://keyvault.localhost:8443',
      KEY_VAULT_CREDENTIAL: 'static',
      KEY_VAULT_CA_CERT_PATH: '/vault-ca/ca.pem',
      KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
      AUTH_API_KEYS: JSON.stringify([{ id: 'ops', tenant: 'acme', scopes: ['credentials:read'], sha256: 'a'.repeat(64) }]),
    };
    expect(loadAppConfig(devVault).keyVault).toMatchObject({ mode: 'external', caCertPath: '/vault-ca/ca.pem' });
    const msg = problemsOf({ ...devVault, NODE_ENV: 'production' });
    expect(msg).toMatch(/KEY_VAULT_CA_CERT_PATH: .*refused when NODE_ENV=production/);
    expect(msg).toMatch(/KEY_VAULT_CREDENTIAL: static .*refused when NODE_ENV=production/);
    expect(msg).toMatch(/KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: .*refused when NODE_ENV=production/);
    // A vault on this machine (an emulator next to the host) keeps them.
    expect(() => loadAppConfig({ ...devVault, NODE_ENV: 'production', KEY_VAULT_URL: 'https://127.0.0.1:8443' })).not.toThrow();
  });

  it('anchors the audit chains every 5 minutes by default; AUDIT_ANCHOR_* override it', () => {
    expect(loadAppConfig({}).audit.anchor).toEqual({ enabled: true, cron: '*/5 * * * *' });
    expect(loadAppConfig({ AUDIT_ANCHOR_ENABLED: 'false', AUDIT_ANCHOR_CRON: '0 * * * *' }).audit.anchor).toEqual({
      enabled: false,
      cron: '0 * * * *',
    });
    expect(() => loadAppConfig({ AUDIT_ANCHOR_ENABLED: 'sometimes', AUDIT_ANCHOR_CRON: '* *' })).toThrow(
      /AUDIT_ANCHOR_ENABLED[\s\S]*AUDIT_ANCHOR_CRON/,
    );
  });

  it('writes the audit read batches with named statements unless DATABASE_PREPARED_STATEMENTS=false (a pooler that cannot keep them)', () => {
    expect(loadAppConfig({}).audit.preparedStatements).toBe(true);
    const pg = { DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://u@db:5432/cv' };
    expect(loadAppConfig({ ...pg, DATABASE_PREPARED_STATEMENTS: 'false' }).audit.preparedStatements).toBe(false);
    expect(() => loadAppConfig({ ...pg, DATABASE_PREPARED_STATEMENTS: 'off-ish' })).toThrow(/DATABASE_PREPARED_STATEMENTS/);
  });

  it('writes the audit read batches of a SQLite file from a worker thread unless DATABASE_SQLITE_WRITE_WORKER=false', () => {
    expect(loadAppConfig({}).audit.sqliteWriteWorker).toBe(true);
    expect(loadAppConfig({ DATABASE_SQLITE_WRITE_WORKER: 'false' }).audit.sqliteWriteWorker).toBe(false);
    expect(() => loadAppConfig({ DATABASE_SQLITE_WRITE_WORKER: 'maybe' })).toThrow(/DATABASE_SQLITE_WRITE_WORKER/);
  });

  it("sets the Key Vault breaker's half-open delay from KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS (30 s by default), for either vault", () => {
    expect(loadAppConfig({}).keyVault.breakerHalfOpenAfterMs).toBe(30_000);
    const embedded = loadAppConfig({ KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS: '5000' });
    expect(embedded.keyVault).toMatchObject({ mode: 'embedded', breakerHalfOpenAfterMs: 5000 });
    const external = loadAppConfig({ KEY_VAULT_URL: 'https://v.vault.azure.net', KEY_VAULT_CREDENTIAL: 'managed-identity', KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS: '120000' });
    // The value reaches the KeyVaultModule options the host builds.
    expect(keyVaultOptions(external, {} as EmbeddedVault).resilience?.breaker).toEqual({ halfOpenAfterMs: 120_000 });
  });

  it.each(['0', '999', '600001', '15s', '1.5', '-30000'])('refuses KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS=%s, listed with the other problems', (value) => {
    const msg = problemsOf({ KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS: value, KEY_VAULT_TIMEOUT_MS: '5' });
    expect(msg).toMatch(/KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS: /);
    expect(msg).toMatch(/KEY_VAULT_TIMEOUT_MS: /);
  });

  it('treats empty variables as unset', () => {
    expect(loadAppConfig({ KEY_VAULT_URL: '', PORT: '' }).keyVault.mode).toBe('embedded');
  });

  // A compose or helm template lists every variable with an empty default (`${VAR:-}`): the other backend's are not refused.
  it("takes a template's empty variables of the backends not in use as unset, on either backend", () => {
    const sqliteAndEmbedded = { DATABASE_PATH: '', DATABASE_SQLITE_SYNCHRONOUS: '', EMULATOR_DATA_DIR: '', EMULATOR_PORT: '' };
    const postgresAndExternal = { DATABASE_URL: '', DATABASE_SCHEMA: '', DATABASE_PROBE_AFTER_MS: '', DATABASE_PREPARED_STATEMENTS: '', KEY_VAULT_CREDENTIAL: '', KEY_VAULT_CA_CERT_PATH: '', KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: '', AZURE_FEDERATED_TOKEN_FILE: '' };
    const template = { ...sqliteAndEmbedded, ...postgresAndExternal, DATABASE_TYPE: '', KEY_VAULT_URL: '' };
    expect(loadAppConfigReadingFiles(template)).toMatchObject({ database: { type: 'sqlite' }, keyVault: { mode: 'embedded' } });
    const external = { DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://u@db:5432/cv', KEY_VAULT_URL: 'https://myvault.vault.azure.net', KEY_VAULT_CREDENTIAL: 'managed-identity' };
    expect(loadAppConfigReadingFiles({ ...template, ...external })).toMatchObject({ database: { type: 'postgres' }, keyVault: { mode: 'external' } });
  });

  describe('webhook secrets and notifications (RotationModule options)', () => {
    it('defaults to the lib defaults: 24 h overlap, 5 live secrets, the daily job, no e-mail; the lib accepts them', () => {
      const { webhooks, notifications, smtpCaCertPath } = loadAppConfig({}).rotation;
      // 03:30 daily, written with 5 fields like the host's other jobs
      expect(resolveWebhookSecretsOptions(webhooks)).toEqual({ ...DEFAULT_WEBHOOK_SECRETS_OPTIONS, job: { ...DEFAULT_WEBHOOK_SECRETS_OPTIONS.job, cron: '30 3 * * *' } });
      const resolved = resolveNotificationOptions(notifications);
      expect(resolved).toEqual(resolveNotificationOptions({}));
      expect(resolved.email.enabled).toBe(false);
      expect(smtpCaCertPath).toBeUndefined();
    });

    it('maps every variable onto the lib options, which accept them', () => {
      const cfg = loadAppConfig(
        {
          WEBHOOK_SECRET_OVERLAP_MS: '3600000',
          WEBHOOK_SECRET_MAX_LIVE: '3',
          WEBHOOK_SECRET_TOLERANCE_SECONDS: '120',
          WEBHOOK_SECRET_CACHE_TTL_MS: '5000',
          WEBHOOK_SECRET_STAGED_TTL_MS: '600000',
          WEBHOOK_SECRET_ROTATION_ENABLED: 'false',
          WEBHOOK_SECRET_ROTATION_CRON: '0 4 * * 1',
          WEBHOOK_SECRET_ROTATION_MAX_PER_RUN: '50',
          NOTIFICATIONS_ENABLED: 'yes',
          NOTIFICATIONS_WEBHOOK_ENABLED: 'false',
          NOTIFICATIONS_WEBHOOK_TIMEOUT_MS: '2000',
          NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
          NOTIFICATIONS_RETRY_MAX_ATTEMPTS: '8',
          NOTIFICATIONS_RETRY_BASE_MS: '1000',
          NOTIFICATIONS_RETRY_MAX_MS: '60000',
          NOTIFICATIONS_RETRY_LEASE_MS: '30000',
          NOTIFICATIONS_RETENTION_DAYS: '7',
          SMTP_HOST: 'smtp.example.test',
          SMTP_PORT: '465',
          SMTP_SECURE: 'true',
          SMTP_USER: 'vault',
          SMTP_PASSWORD: 'pw-123456',
          SMTP_FROM: 'Vault <vault@example.test>',
          SMTP_TIMEOUT_MS: '4000',
          SMTP_CA_CERT_PATH: 'certs/smtp-ca.pem',
        },
        '/srv/app',
      );
      expect(resolveWebhookSecretsOptions(cfg.rotation.webhooks)).toEqual({
        overlapMs: 3_600_000,
        maxLiveSecrets: 3,
        toleranceSeconds: 120,
        rotateAfterMs: DEFAULT_WEBHOOK_SECRETS_OPTIONS.rotateAfterMs,
        cacheTtlMs: 5000,
        stagedTtlMs: 600_000,
        // Not a host variable: the lib's default.
        stageLockWaitMs: DEFAULT_WEBHOOK_SECRETS_OPTIONS.stageLockWaitMs,
        job: { enabled: false, cron: '0 4 * * 1', timeZone: 'UTC', maxPerRun: 50 },
      });
      const n = resolveNotificationOptions(cfg.rotation.notifications);
      expect(n).toMatchObject({
        enabled: true,
        retry: { maxAttempts: 8, baseMs: 1000, maxMs: 60_000, leaseMs: 30_000 },
        retentionMs: 7 * 86_400_000,
        webhook: { enabled: false, timeoutMs: 2000, allowPrivateTargets: true },
        email: { enabled: true, host: 'smtp.example.test', port: 465, secure: true, auth: { user: 'vault', pass: 'pw-123456' }, from: 'Vault <vault@example.test>', timeoutMs: 4000 },
      });
      expect(cfg.rotation.webhookNotificationsEnabled).toBe(false);
      expect(cfg.rotation.smtpCaCertPath).toBe('/srv/app/certs/smtp-ca.pem');
    });

    it('names every bad variable and echoes no value', () => {
      const password = 'hunter2-smtp-password';
      const msg = problemsOf({
        WEBHOOK_SECRET_OVERLAP_MS: '-5',
        WEBHOOK_SECRET_MAX_LIVE: '1',
        WEBHOOK_SECRET_STAGED_TTL_MS: '1000',
        WEBHOOK_SECRET_ROTATION_ENABLED: 'sometimes',
        WEBHOOK_SECRET_ROTATION_CRON: 'every-night-at-3',
        NOTIFICATIONS_RETRY_MAX_ATTEMPTS: '0',
        NOTIFICATIONS_WEBHOOK_TIMEOUT_MS: 'ten-seconds',
        SMTP_PORT: '70000',
        SMTP_PASSWORD: password,
      });
      for (const v of [
        'WEBHOOK_SECRET_OVERLAP_MS',
        'WEBHOOK_SECRET_MAX_LIVE',
        'WEBHOOK_SECRET_STAGED_TTL_MS',
        'WEBHOOK_SECRET_ROTATION_ENABLED',
        'WEBHOOK_SECRET_ROTATION_CRON',
        'NOTIFICATIONS_RETRY_MAX_ATTEMPTS',
        'NOTIFICATIONS_WEBHOOK_TIMEOUT_MS',
        'SMTP_PORT',
        'SMTP_USER and SMTP_PASSWORD: set both or neither',
        'SMTP_PASSWORD: is set but SMTP_HOST is not',
      ]) {
        expect(msg).toContain(v);
      }
      for (const value of [password, 'every-night-at-3', 'ten-seconds', 'sometimes', '70000']) expect(msg).not.toContain(value);
    });

    it('checks the rules between variables: SMTP_FROM with SMTP_HOST, retry bounds, the lease beyond the timeouts, TLS modes', () => {
      expect(problemsOf({ SMTP_HOST: 'smtp.example.test' })).toMatch(/SMTP_FROM: is required when SMTP_HOST is set/);
      expect(problemsOf({ SMTP_HOST: 'smtp bad host', SMTP_FROM: 'a@b.c' })).toMatch(/SMTP_HOST: must be a host name/);
      expect(problemsOf({ SMTP_HOST: 'smtp.example.test', SMTP_FROM: 'nobody' })).toMatch(/SMTP_FROM: must be an e-mail address/);
      expect(problemsOf({ NOTIFICATIONS_RETRY_BASE_MS: '90000', NOTIFICATIONS_RETRY_MAX_MS: '60000' })).toMatch(/NOTIFICATIONS_RETRY_BASE_MS: must not exceed NOTIFICATIONS_RETRY_MAX_MS/);
      expect(problemsOf({ NOTIFICATIONS_WEBHOOK_TIMEOUT_MS: '60000' })).toMatch(/NOTIFICATIONS_RETRY_LEASE_MS: must exceed NOTIFICATIONS_WEBHOOK_TIMEOUT_MS/);
      expect(problemsOf({ SMTP_HOST: 'h', SMTP_FROM: 'a@b.c', SMTP_SECURE: 'true', SMTP_IGNORE_TLS: 'true' })).toMatch(/SMTP_IGNORE_TLS: cannot be combined with SMTP_SECURE/);
      // Raising the lease makes a long timeout valid.
      expect(loadAppConfig({ NOTIFICATIONS_WEBHOOK_TIMEOUT_MS: '60000', NOTIFICATIONS_RETRY_LEASE_MS: '120000' }).rotation.notifications.webhook).toMatchObject({ timeoutMs: 60_000 });
    });
  });

  it('picks the shared cache tier when REDIS_URL is set; CACHE_TIER / CACHE_INVALIDATION are checked against what exists', () => {
    expect(loadAppConfig({}).credentials).toMatchObject({ cacheTier: 'memory', cacheInvalidation: 'auto' });
    expect(loadAppConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }).credentials).toMatchObject({ cacheTier: 'redis', cacheInvalidation: 'auto' });
    expect(loadAppConfig({ REDIS_URL: 'redis://127.0.0.1:6379', CACHE_TIER: 'memory' }).credentials.cacheTier).toBe('memory');
    expect(loadAppConfig({ DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://u@db/cv', CACHE_INVALIDATION: 'postgres' }).credentials.cacheInvalidation).toBe('postgres');
    expect(problemsOf({ CACHE_TIER: 'redis' })).toContain('CACHE_TIER: redis needs REDIS_URL');
    expect(problemsOf({ CACHE_TIER: 'disk' })).toContain("CACHE_TIER: must be 'memory' or 'redis'");
    expect(problemsOf({ CACHE_INVALIDATION: 'redis' })).toContain('CACHE_INVALIDATION: redis needs the redis cache tier');
    expect(problemsOf({ CACHE_INVALIDATION: 'postgres' })).toContain('CACHE_INVALIDATION: postgres needs DATABASE_TYPE=postgres');
    expect(problemsOf({ REDIS_URL: 'redis://127.0.0.1:6379', CACHE_INVALIDATION: 'none' })).toContain('CACHE_INVALIDATION: none cannot be used with the redis cache tier');
  });

  it('sets the cache heartbeat (1 s, lost after 3 s by default): bounded, the threshold at least 3 intervals, and only where evictions fan out', () => {
    const pg = { DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://u@db/cv' };
    expect(loadAppConfig(pg).credentials.cacheHeartbeat).toEqual({ intervalMs: 1000, lostAfterMs: 3000 });
    expect(loadAppConfig({ ...pg, CACHE_HEARTBEAT_LOST_AFTER_MS: '15000' }).credentials.cacheHeartbeat).toEqual({ intervalMs: 1000, lostAfterMs: 15_000 });
    expect(loadAppConfig({ REDIS_URL: 'redis://127.0.0.1:6379', CACHE_HEARTBEAT_INTERVAL_MS: '500', CACHE_HEARTBEAT_LOST_AFTER_MS: '1500' }).credentials.cacheHeartbeat).toEqual({
      intervalMs: 500,
      lostAfterMs: 1500,
    });
    expect(problemsOf({ ...pg, CACHE_HEARTBEAT_INTERVAL_MS: '2000' })).toContain('CACHE_HEARTBEAT_LOST_AFTER_MS: must be at least 3 × CACHE_HEARTBEAT_INTERVAL_MS');
    expect(problemsOf({ ...pg, CACHE_HEARTBEAT_INTERVAL_MS: '50' })).toMatch(/CACHE_HEARTBEAT_INTERVAL_MS/);
    expect(problemsOf({ ...pg, CACHE_HEARTBEAT_LOST_AFTER_MS: '60000' })).toMatch(/CACHE_HEARTBEAT_LOST_AFTER_MS/);
    // One process on SQLite (or fan-out off) has no heartbeat: the variable would do nothing.
    expect(problemsOf({ CACHE_HEARTBEAT_LOST_AFTER_MS: '10000' })).toContain('CACHE_HEARTBEAT_LOST_AFTER_MS: applies only when cache evictions fan out');
    expect(problemsOf({ ...pg, CACHE_INVALIDATION: 'none', CACHE_HEARTBEAT_INTERVAL_MS: '500' })).toContain('CACHE_HEARTBEAT_INTERVAL_MS: applies only when cache evictions fan out');
    // Redis for rate limits only (the memory tier on SQLite): nothing fans evictions out either.
    expect(problemsOf({ REDIS_URL: 'redis://127.0.0.1:6379', CACHE_TIER: 'memory', CACHE_HEARTBEAT_INTERVAL_MS: '500' })).toContain('CACHE_HEARTBEAT_INTERVAL_MS: applies only when cache evictions fan out');
  });

  it('bounds each call of the redis cache tier (500 ms by default), only where that tier is used', () => {
    const redis = { REDIS_URL: 'redis://127.0.0.1:6379' };
    expect(loadAppConfig(redis).credentials.cacheRedisTimeoutMs).toBe(500);
    expect(loadAppConfig({ ...redis, CACHE_REDIS_TIMEOUT_MS: '2000' }).credentials.cacheRedisTimeoutMs).toBe(2000);
    expect(problemsOf({ ...redis, CACHE_REDIS_TIMEOUT_MS: '5' })).toMatch(/CACHE_REDIS_TIMEOUT_MS/);
    expect(problemsOf({ ...redis, CACHE_REDIS_TIMEOUT_MS: 'soon' })).toMatch(/CACHE_REDIS_TIMEOUT_MS/);
    expect(problemsOf({ CACHE_REDIS_TIMEOUT_MS: '2000' })).toContain('CACHE_REDIS_TIMEOUT_MS: applies only to the redis cache tier');
    expect(problemsOf({ ...redis, CACHE_TIER: 'memory', CACHE_REDIS_TIMEOUT_MS: '2000' })).toContain('CACHE_REDIS_TIMEOUT_MS: applies only to the redis cache tier');
  });

  it('keeps gRPC off unless GRPC_ENABLED; on, it listens on GRPC_HOST:GRPC_PORT (loopback:50051 by default), never on the HTTP port', () => {
    expect(loadAppConfig({}).grpc).toEqual({ enabled: false, host: '127.0.0.1', port: 50051 });
    expect(loadAppConfig({ GRPC_ENABLED: 'true' }).grpc).toEqual({ enabled: true, host: '127.0.0.1', port: 50051 });
    expect(loadAppConfig({ GRPC_ENABLED: '1', GRPC_HOST: '0.0.0.0', GRPC_PORT: '6000' }).grpc).toEqual({ enabled: true, host: '0.0.0.0', port: 6000 });
    expect(problemsOf({ GRPC_ENABLED: 'on' })).toMatch(/GRPC_ENABLED/);
    expect(problemsOf({ GRPC_PORT: '0' })).toMatch(/GRPC_PORT/);
    expect(problemsOf({ GRPC_ENABLED: 'true', PORT: '50051' })).toContain('GRPC_PORT: must differ from PORT');
    // The embedded vault's port is taken on loopback too (an external vault frees it; 0 picks a free one).
    expect(problemsOf({ PORT: '8443' })).toContain('EMULATOR_PORT: must differ from PORT');
    expect(problemsOf({ GRPC_ENABLED: 'true', GRPC_PORT: '8443' })).toContain('EMULATOR_PORT: must differ from GRPC_PORT');
    expect(loadAppConfig({ PORT: '8443', KEY_VAULT_URL: 'https://v.vault.azure.net' }).http.port).toBe(8443);
    expect(loadAppConfig({ PORT: '8443', EMULATOR_PORT: '0' }).http.port).toBe(8443);
    // Off, a clash does not matter: nothing listens there.
    expect(loadAppConfig({ PORT: '50051' }).grpc.enabled).toBe(false);
  });

  it('configures KeysModule: local verify, RSA1_5 refused and a 60 s key cache by default', () => {
    expect(loadAppConfig({}).keys).toEqual({ verify: 'local', allowRsa1_5: false, cacheTtlMs: 60_000 });
    expect(loadAppConfig({ KEYS_VERIFY: 'remote', KEYS_ALLOW_RSA1_5: 'true', KEYS_CACHE_TTL_MS: '1000' }).keys).toEqual({ verify: 'remote', allowRsa1_5: true, cacheTtlMs: 1000 });
    expect(problemsOf({ KEYS_VERIFY: 'both' })).toContain("KEYS_VERIFY: must be 'local' or 'remote'");
    expect(problemsOf({ KEYS_CACHE_TTL_MS: '0' })).toMatch(/KEYS_CACHE_TTL_MS/);
  });

  it('refuses CACHE_TTL_MS=0 at validation (the credentials lib needs a positive TTL: the host would not start)', () => {
    expect(problemsOf({ CACHE_TTL_MS: '0' })).toMatch(/CACHE_TTL_MS/);
    expect(loadAppConfig({ CACHE_TTL_MS: '1' }).credentials.cacheTtlMs).toBe(1);
  });

  it('ENVELOPE_KEY_REFRESH_MS sets how long a replica trusts the current data key and key-encryption key versions', () => {
    expect(loadAppConfig({ ENVELOPE_KEY_REFRESH_MS: '60000' }).credentials.envelope.currentKeyRefreshMs).toBe(60_000);
    expect(problemsOf({ ENVELOPE_KEY_REFRESH_MS: '10' })).toContain('ENVELOPE_KEY_REFRESH_MS');
    expect(problemsOf({ ENVELOPE_KEY_REFRESH_MS: 'soon' })).toContain('ENVELOPE_KEY_REFRESH_MS');
  });

  it('wraps envelope data keys with a vault key only when ENVELOPE_KEY_ENCRYPTION_KEY names one', () => {
    expect(loadAppConfig({}).credentials.envelope).toEqual({ currentKeyRefreshMs: 3_600_000 });
    expect(loadAppConfig({ ENVELOPE_KEY_ENCRYPTION_KEY: 'cv-kek' }).credentials.envelope).toEqual({ currentKeyRefreshMs: 3_600_000, keyEncryptionKey: 'cv-kek' });
    expect(problemsOf({ ENVELOPE_KEY_ENCRYPTION_KEY: 'not a key name' })).toContain('ENVELOPE_KEY_ENCRYPTION_KEY: must be a vault key name: 1-127 characters of 0-9, a-z, A-Z and -');
  });
});
