/**
 * Integration: the orphan-versions job whose lock session ends mid-run (PostgreSQL, the real SDK against the local
 * vault). The test ends that one session (found by the job's advisory key in pg_locks) while the job sweeps its first
 * credential secret: the run stops before the next secret, and another session (a replica) can take the lock at once.
 */
import { randomBytes } from 'node:crypto';
import { LOCK_KEYS, PostgresAdvisoryLock, type OperationContext } from '@app/common';
import { CapturingLogger, endLockSession, rejection } from '@app/testing';
import { DataSource } from 'typeorm';
import { CredentialOrphanVersions } from '../index';
import { VaultValueStore } from '../stores/vault-value-store';
import { startOrphanVersionsStack, type OrphanVersionsStack } from '../testing/orphan-versions-stack';

describe('the orphan-versions job whose lock session ends (postgres)', () => {
  let stack: OrphanVersionsStack;
  let replica: DataSource;
  const logger = new CapturingLogger();
  const ctx: OperationContext = { tenantId: `orph_lost_${randomBytes(3).toString('hex')}`, actor: { id: 'user:ops' } };

  beforeAll(async () => {
    stack = await startOrphanVersionsStack('postgres', ctx, 4, logger);
    replica = await new DataSource({ ...stack.db.options }).initialize();
  });
  afterAll(async () => {
    await replica?.destroy();
    await stack?.close();
  });

  it('stops before its next secret with LOCK_LOST, another session takes the lock, and the next run does every secret', async () => {
    const store = stack.moduleRef.get(VaultValueStore);
    const enabledVersions = store.enabledVersions.bind(store);
    const swept: string[] = [];
    let inFirst!: () => void;
    const first = new Promise<void>((r) => (inFirst = r));
    let finishFirst!: () => void;
    const gate = new Promise<void>((r) => (finishFirst = r));
    const spy = jest.spyOn(store, 'enabledVersions').mockImplementation(async (name) => {
      swept.push(name);
      if (swept.length === 1) {
        inFirst();
        await gate;
      }
      return enabledVersions(name);
    });
    try {
      const replicaLock = new PostgresAdvisoryLock(replica);
      const run = rejection(stack.moduleRef.get(CredentialOrphanVersions).runOnce());
      await first;
      await endLockSession(replica, replicaLock.advisoryId(LOCK_KEYS.credentialOrphanVersions));
      await expect(replicaLock.tryRun(LOCK_KEYS.credentialOrphanVersions, async () => 'replica')).resolves.toEqual({ acquired: true, value: 'replica' });
      // The session's end reaches the job's lock (its client sees the socket close) before the sweep goes on.
      for (let i = 0; i < 250 && !logger.lines.some((l) => l.includes('was lost while held')); i++) await new Promise((r) => setTimeout(r, 20));
      finishFirst();

      const e = (await run) as { codeName?: string; message: string };
      expect(e.codeName).toBe('LOCK_LOST');
      for (const v of stack.values) expect(e.message).not.toContain(v);
      expect(swept).toHaveLength(1);
      for (const v of stack.values) expect(logger.lines.join('\n')).not.toContain(v);

      swept.length = 0;
      await expect(stack.moduleRef.get(CredentialOrphanVersions).runOnce()).resolves.toMatchObject({ acquired: true, secrets: 4, failed: 0, passComplete: true });
      expect(swept).toHaveLength(4);
    } finally {
      finishFirst();
      spy.mockRestore();
    }
  });
});
