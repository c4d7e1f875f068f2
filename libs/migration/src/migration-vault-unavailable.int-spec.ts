import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { CredentialType, credentialSecretName } from '@app/credentials';
import { KeyVaultMetrics } from '@app/key-vault';
import { DATABASE_KINDS, rejection } from '@app/testing';
import { legacySeedRows, seedLegacyTable } from './legacy/legacy-seed';
import { MigrationErrorCode, MigrationVaultUnavailableError } from './errors/migration.errors';
import { MigrationRunner } from './runner/migration.runner';
import { SqlLegacySource } from './sources/sql-legacy-source';
import { migrationStackImports, useMigrationStack, type MigrationStack } from './testing/migration-stack';

const COUNT = 300;

/**
 * The next five calls of `operation` answer 500, together: each held 200 ms first, so the calls in flight before have
 * answered and, the run's five slots all taken by them, no success lands between the five failures (their retries come
 * 100 ms or more later: the client's first backoff) — five in a row, which open the breaker.
 */
function fiveConcurrent500s(stack: MigrationStack, operation: string): void {
  stack.vault.injectFault({ kind: 'latency', latencyMs: 200, count: 5, operations: [operation] });
  stack.vault.injectFault({ kind: 'status', status: 500, count: 5, operations: [operation] });
}

/** `sql`'s one number (`n`) on the host database. */
const counter = (stack: MigrationStack) => async (sql: string) => Number((await stack.app.get(DataSource).query(sql))[0].n);

/** Calls the vault client failed fast with its breaker open, so far. */
async function circuitOpenErrors(stack: MigrationStack): Promise<number> {
  const m = await stack.app.get(KeyVaultMetrics).errors.get();
  return m.values.filter((v) => v.labels.code === 'CIRCUIT_OPEN').reduce((n, v) => n + v.value, 0);
}

/**
 * Integration: the vault fails mid-run (real SDK against the local vault's fault injection, checkpoints on SQLite and
 * PostgreSQL). The vault client's breaker opens after a few failures in a row, counted across every concurrent call, so
 * a blip of a few milliseconds opens it as surely as an outage does. A blip is ridden out: the run's vault calls wait
 * until the breaker lets a trial through, are retried, and every connection is migrated once. An outage longer than
 * `maxVaultOutageMs` stops the run with one typed error instead of reporting every connection left as failed; what
 * committed has its checkpoint, and a run once the vault is back migrates exactly the rest.
 */
describe.each(DATABASE_KINDS)('a migration whose vault fails mid-run (%s)', (kind) => {
  describe('for a moment', () => {
    const keys = [randomBytes(32)];
    const stack = useMigrationStack(
      kind,
      ({ db, vault }) =>
        migrationStackImports(
          // The vault client as `migrate` has it (10 attempts; five failures in a row open the breaker), a shorter break.
          { database: db.options, vault, keyVault: { resilience: { breaker: { consecutiveFailures: 5, halfOpenAfterMs: 500 } } } },
          { keys: keys.map((k) => k.toString('hex')), concurrency: { initial: 5, max: 5 }, group: { maxConnections: 10 } },
        ),
      (legacy) => seedLegacyTable(legacy, legacySeedRows({ count: COUNT, keys })),
    );
    const count = counter(stack);

    it('rides through five concurrent 500s that open the breaker: every connection migrated, none failed, each written once', async () => {
      const source = new SqlLegacySource(stack.legacy.db);
      let injected = false;
      const summary = await stack.app.get(MigrationRunner).run(source, {
        onProgress: (p) => {
          if (injected || p.done < 50) return;
          injected = true;
          fiveConcurrent500s(stack, 'setSecret');
        },
      });
      // The blip did open the breaker: writes failed fast with CIRCUIT_OPEN, and were waited out.
      expect(await circuitOpenErrors(stack)).toBeGreaterThan(0);
      expect(summary).toMatchObject({ totalConnections: COUNT, successfulMigrations: COUNT, failedMigrations: 0, skipped: 0, errors: [] });
      const credentials = await count(`SELECT COUNT(*) AS n FROM cv_credentials WHERE status <> 'deleted'`);
      expect(credentials).toBe(summary.totalCredentialsMigrated);
      expect(await count(`SELECT COUNT(*) AS n FROM (SELECT DISTINCT tenant_id, integration_id, connection_id, type FROM cv_credentials) d`)).toBe(credentials);
      expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'migrate'`)).toBe(credentials);
      expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'store' AND result = 'success'`)).toBe(credentials);
      // Retried in the run's vault calls, not as failed stores: no STORE row but the one of each credential.
      expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'store'`)).toBe(credentials);
      expect(await count('SELECT COUNT(*) AS n FROM cv_migration_checkpoints')).toBe(COUNT);
      expect(await count('SELECT SUM(credentials) AS n FROM cv_migration_checkpoints')).toBe(credentials);
    }, 120_000);

    it('a dry run rides through it too: its vault reads wait for the breaker, no connection is reported for it', async () => {
      // Every credential stored, none checkpointed (as if each run had died before its checkpoint): the dry run compares
      // each field with its live credential, a vault read (the envelope ones read the database).
      await stack.app.get(DataSource).query('DELETE FROM cv_migration_checkpoints');
      const before = await circuitOpenErrors(stack);
      let injected = false;
      const summary = await stack.app.get(MigrationRunner).run(new SqlLegacySource(stack.legacy.db), {
        dryRun: true,
        onProgress: (p) => {
          if (injected || p.done < 50) return;
          injected = true;
          fiveConcurrent500s(stack, 'getSecret');
        },
      });
      expect(await circuitOpenErrors(stack)).toBeGreaterThan(before);
      expect(summary).toMatchObject({ dryRun: true, totalConnections: COUNT, successfulMigrations: COUNT, failedMigrations: 0, errors: [] });
    }, 120_000);
  });

  describe('for longer than maxVaultOutageMs', () => {
    const MAX_OUTAGE_MS = 1500;
    const keys = [randomBytes(32)];
    const stack = useMigrationStack(
      kind,
      ({ db, vault }) =>
        migrationStackImports(
          { database: db.options, vault, keyVault: { resilience: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 50, breaker: { consecutiveFailures: 3, halfOpenAfterMs: 300 } } } },
          { keys: keys.map((k) => k.toString('hex')), concurrency: { initial: 4, max: 4 }, group: { maxConnections: 10 }, maxVaultOutageMs: MAX_OUTAGE_MS },
        ),
      (legacy) => seedLegacyTable(legacy, legacySeedRows({ count: COUNT, keys })),
    );
    const count = counter(stack);

    it('stops with MIGRATION_VAULT_UNAVAILABLE once the outage outlasts it, and a run after the vault recovers migrates exactly the rest', async () => {
      const source = new SqlLegacySource(stack.legacy.db);
      let failingSince = 0;
      const e = (await rejection(
        stack.app.get(MigrationRunner).run(source, {
          onProgress: (p) => {
            if (failingSince || p.done < 50) return;
            failingSince = Date.now();
            stack.vault.resetStats();
            stack.vault.injectFault({ kind: 'status', status: 500, operations: ['setSecret'] });
          },
        }),
      )) as MigrationVaultUnavailableError;
      const stoppedAfter = Date.now() - failingSince;
      expect(e).toBeInstanceOf(MigrationVaultUnavailableError);
      expect(e.code).toBe(MigrationErrorCode.VAULT_UNAVAILABLE);
      expect(e.message).toMatch(/CIRCUIT_OPEN/);
      expect(e.message).toContain(`${MAX_OUTAGE_MS} ms`);
      // It waited the outage out that long, no longer than a break more (and the commit of what was in flight).
      expect(stoppedAfter).toBeGreaterThanOrEqual(MAX_OUTAGE_MS);
      expect(stoppedAfter).toBeLessThan(MAX_OUTAGE_MS + 3000);
      // Meanwhile it asked the vault about once per break (its trial call), not again and again — nor its client: the
      // calls waited for the break's end (~25 failed fast, a few per break), not looping on CIRCUIT_OPEN (~10000).
      expect(stack.vault.stats().byOperationAndStatus['setSecret:500']).toBeLessThanOrEqual(30);
      expect(await circuitOpenErrors(stack)).toBeLessThanOrEqual(100);
      // Stopped after the groups in flight: most connections were neither migrated nor reported.
      const checkpointed = await count('SELECT COUNT(*) AS n FROM cv_migration_checkpoints');
      expect(checkpointed).toBeGreaterThanOrEqual(50);
      expect(checkpointed).toBeLessThan(150);
      // What it did up to the stop (the CLI's table and report): exactly what committed; no connection reported for the outage.
      expect(e.summary).toMatchObject({ successfulMigrations: checkpointed, failedMigrations: 0, errors: [], aborted: false, stopped: { code: 'MIGRATION_VAULT_UNAVAILABLE', reason: e.message } });
      // Nothing half-written: every credential committed has its MIGRATE row and its connection's checkpoint.
      const credentials = await count('SELECT COUNT(*) AS n FROM cv_credentials');
      expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'migrate'`)).toBe(credentials);
      expect(await count('SELECT SUM(credentials) AS n FROM cv_migration_checkpoints')).toBe(credentials);

      stack.vault.clearFaults();
      // The breaker half-opens after 300 ms: the next run's first write is its trial, and closes it.
      await new Promise((r) => setTimeout(r, 400));
      const resumed = await stack.app.get(MigrationRunner).run(source);
      expect(resumed).toMatchObject({ totalConnections: COUNT, successfulMigrations: COUNT - checkpointed, failedMigrations: 0, skipped: checkpointed, errors: [] });
      const total = await count('SELECT COUNT(*) AS n FROM cv_credentials');
      expect(total).toBe(credentials + resumed.totalCredentialsMigrated);
      expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'migrate'`)).toBe(total);
      expect(await count(`SELECT COUNT(*) AS n FROM (SELECT DISTINCT tenant_id, integration_id, connection_id, type FROM cv_credentials) d`)).toBe(total);
    }, 120_000);
  });

  describe('for one secret only, the others answering', () => {
    // Long enough that a loaded machine's slow run (1.9 s seen in CI) stays far below it; a run that took the failing
    // secret for an outage would wait it out and stop (summary.stopped), whatever the machine.
    const MAX_OUTAGE_MS = 10_000;
    const keys = [randomBytes(32)];
    const rows = legacySeedRows({ count: 100, keys, apiKeysOnly: true });
    const bad = rows[10];
    const stack = useMigrationStack(
      kind,
      ({ db, vault }) =>
        migrationStackImports(
          // Three attempts a call, five failures in a row to open the breaker: the one failing secret never opens it alone.
          { database: db.options, vault, keyVault: { resilience: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 50, breaker: { consecutiveFailures: 5, halfOpenAfterMs: 300 } } } },
          { keys: keys.map((k) => k.toString('hex')), concurrency: { initial: 4, max: 4 }, group: { maxConnections: 10 }, maxVaultOutageMs: MAX_OUTAGE_MS },
        ),
      (legacy) => seedLegacyTable(legacy, rows),
    );
    const count = counter(stack);

    it("is no outage: that connection fails once the client's retries are spent, reported by id; the run neither waits nor stops, and migrates the rest", async () => {
      const name = credentialSecretName({ tenantId: bad.tenant_id, integrationId: bad.integration_id, type: CredentialType.API_KEY, connectionId: bad.connection_id }, 0);
      stack.vault.injectFault({ kind: 'status', status: 500, operations: ['setSecret'], names: [name] });
      const started = Date.now();
      const summary = await stack.app.get(MigrationRunner).run(new SqlLegacySource(stack.legacy.db));
      // Only an open breaker is an outage: a 5xx once the client's three attempts are spent is that connection's failure.
      expect(Date.now() - started).toBeLessThan(MAX_OUTAGE_MS);
      expect(stack.vault.stats().byOperationAndStatus['setSecret:500']).toBe(3);
      expect(summary).toMatchObject({ totalConnections: 100, successfulMigrations: 99, failedMigrations: 1, skipped: 0 });
      expect(summary.errors).toEqual([expect.objectContaining({ legacyId: String(bad.id), code: 'SERVICE_UNAVAILABLE' })]);
      expect(summary.stopped).toBeUndefined();
      expect(await count('SELECT COUNT(*) AS n FROM cv_credentials')).toBe(99);
      expect(await count('SELECT COUNT(*) AS n FROM cv_migration_checkpoints')).toBe(99);
      expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'migrate'`)).toBe(99);
      stack.vault.clearFaults();
    }, 120_000);
  });
});
