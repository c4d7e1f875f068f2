import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { hostDatabase } from '../../bench/reliability/databases';
import { apiClient, marker, QUIET_HOST_ENV, sleep, tenantKey } from '../../bench/reliability/http';
import { buildHost, startReplica, type HostBuild } from '../cluster/replicas';
import { externalVaultEnv } from '../support/cli';

jest.setTimeout(240_000);

/**
 * A value read is answered only once its audit row has committed: a host process serving value reads
 * and killed with SIGKILL (no shutdown hook, no final flush) has an audit row — correlation id = the
 * request id of the answer — for every read that got a 200. Against the former buffered audit (rows
 * written up to `flushIntervalMs` later) the reads of the last second before the kill had none.
 */
describe.each(['sqlite', 'postgres'] as const)('read audit survives kill -9 (%s)', (kind) => {
  let build: HostBuild;
  let vault: KeyVaultEmulator;
  let dir: string;
  beforeAll(async () => {
    // The committed tree unless told otherwise: edits in progress elsewhere in the work tree do not disturb it.
    process.env.CLUSTER_BUILD_REF ??= 'HEAD';
    build = await buildHost();
    vault = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    dir = mkdtempSync(join(tmpdir(), 'cv-read-audit-crash-'));
  });
  afterAll(async () => {
    await vault?.stop();
    build?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every read answered 200 before the kill has its audit row', async () => {
    const database = await hostDatabase(kind, dir);
    const key = tenantKey('crash-read', 'crashread');
    const host = await startReplica(build, `read-audit-${kind}`, {
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'error',
      ...database.env,
      ...externalVaultEnv(vault),
      AUTH_API_KEYS: JSON.stringify([key.entry]),
      ...QUIET_HOST_ENV,
    });
    try {
      const call = apiClient(host.url, key.key);
      const stored = await call('POST', '/v1/credentials', { integrationId: 'crash', connectionId: 'reads', type: 'api_key', value: marker('cra') });
      expect(stored.status).toBe(201);

      const answered: string[] = [];
      let stop = false;
      const reader = async () => {
        while (!stop) {
          try {
            const r = await call('GET', `/v1/credentials/${stored.body.id}/value`);
            if (r.status === 200) answered.push(r.headers.get('x-request-id')!);
          } catch {
            return; // the connection dropped with the process
          }
        }
      };
      const readers = Array.from({ length: 8 }, reader);
      // Kill in the middle of a steady stream of reads, well inside the former 1 s flush interval.
      while (answered.length < 200) await sleep(10);
      await host.kill9();
      stop = true;
      await Promise.all(readers);

      expect(answered.length).toBeGreaterThanOrEqual(200);
      expect(answered.every((id) => /^[\w-]+$/.test(id))).toBe(true);
      const ids = answered.map((id) => `'${id}'`).join(',');
      const audited = await database.count(
        `SELECT COUNT(DISTINCT correlation_id) AS n FROM cv_audit_log WHERE tenant_id = 'crashread' AND action = 'read' AND result = 'success' AND correlation_id IN (${ids})`,
      );
      expect(audited).toBe(new Set(answered).size);
    } finally {
      await host.stop().catch(() => undefined);
      await database.drop();
    }
  });
});
