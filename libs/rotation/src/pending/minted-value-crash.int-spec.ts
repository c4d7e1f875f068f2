/**
 * Integration (real processes, real SDK, local vault, SQLite and PostgreSQL): a RotationHandler mints the new value at
 * the provider before the vault write, so a process that dies between the mint and the commit of the new version
 * (kill -9, OOM, a deploy) must not lose it. A child app rotates a credential and is killed with SIGKILL there; a fresh
 * app on the same database finds the minted value kept as the credential's pending rotation value, and its next
 * rotation writes that value without asking the handler again. A child killed after the commit but before the pending
 * value was dropped leaves a stale one, which the next rotation drops (minting afresh, never writing it back).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock, type OperationContext } from '@app/common';
import { CredentialType } from '@app/credentials';
import { DATABASE_KINDS, killHard, startCrashChild, writeRequireHook } from '@app/testing';
import { buildRotationStack, useRotationStack, type RotationStack } from '../rotation-stack.testing';

const CHILD = join(__dirname, 'testing', 'minted-value-crash.child.ts');
/** The child loads only the stack helper of the test support (the rest starts the OAuth test server). */
const STACK_ONLY = { '@app/testing': ['test/support/stack.ts'] };

jest.setTimeout(120_000);

describe.each(DATABASE_KINDS)('a handler rotation killed between the mint and the commit on %s', (kind) => {
  let dir: string;
  let hook: string;
  let s: RotationStack | undefined;
  const clock = new ManualClock(new Date());
  const run = randomBytes(3).toString('hex');
  let seq = 0;
  // The provider of the fresh app: every mint there makes another live key.
  const minted: string[] = [];
  const handler = {
    mint: async () => {
      const value = `pk_${randomBytes(16).toString('hex')}`;
      minted.push(value);
      return { value };
    },
  };

  // Each test builds its own stacks on the shared vault and database, around the child it kills.
  const env = useRotationStack(kind, { clock, replicas: 0 });
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cv-mint-kill-'));
    hook = writeRequireHook(dir, STACK_ONLY);
  });
  afterEach(async () => {
    await s?.moduleRef.close();
    s = undefined;
    minted.length = 0;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A credential of a fresh tenant (no envelope data key yet), then a child that rotates it and dies at `crashAt`. */
  async function crashedRotation(crashAt: 'write' | 'commit'): Promise<{ ctx: OperationContext; id: string; old: string; value: string; stoppedAt: string }> {
    const ctx: OperationContext = { tenantId: `mintkill_${run}_${++seq}`, actor: { id: 'user:ops' } };
    const { db, emu } = env;
    const setup = await buildRotationStack(db, emu, clock);
    const old = `k-${randomBytes(12).toString('hex')}`;
    const { id } = await setup.credentials.store(ctx, { integrationId: 'acme', connectionId: `c${seq}`, type: CredentialType.API_KEY, value: old });
    await setup.moduleRef.close();
    const value = `pk_${randomBytes(16).toString('hex')}`;
    const { child, line } = startCrashChild(hook, CHILD, 'STOPPED', {
      env: { CV_TEST_DS: JSON.stringify(db.options), CV_VAULT_URL: emu.vaultUrl, CV_VAULT_CA: emu.caCertPem, CV_TENANT: ctx.tenantId, CV_CREDENTIAL: id, CV_VALUE: value, CV_CRASH_AT: crashAt },
    });
    const stoppedAt = await line;
    expect(await killHard(child)).toBe('SIGKILL');
    s = await buildRotationStack(db, emu, clock, { handlers: [{ integrationId: 'acme', handler }] });
    return { ctx, id, old, value, stoppedAt };
  }

  it('killed before the write: the next rotation writes the value minted before the crash, the handler is not called again', async () => {
    const { ctx, id, old, value, stoppedAt } = await crashedRotation('write');
    expect(stoppedAt).toBe(id);
    // Nothing a reader sees changed; the operator sees the pending rotation.
    const before = await s!.credentials.get(ctx, id);
    expect([before.value, before.metadata.version]).toEqual([old, 1]);
    expect(await s!.rotation.pendingRotation(ctx, id)).toMatchObject({ credentialId: id, basedOnVersion: 1 });

    expect(await s!.rotation.rotate(ctx, id, { reason: 'retry after crash' })).toMatchObject({ method: 'handler', fromVersion: 1 });
    expect(minted).toEqual([]);
    const after = await s!.credentials.get(ctx, id);
    expect([after.value, after.metadata.version]).toEqual([value, 2]);
    expect(await s!.rotation.pendingRotation(ctx, id)).toBeNull();

    // The one after that mints afresh.
    await s!.rotation.rotate(ctx, id, { reason: 'manual' });
    expect(minted).toHaveLength(1);
    expect((await s!.credentials.get(ctx, id)).value).toBe(minted[0]);
  });

  it('killed after the commit, before the pending value was dropped: the stale one is dropped, never written back', async () => {
    const { ctx, id, value, stoppedAt } = await crashedRotation('commit');
    expect(stoppedAt).toBe('2');
    const current = await s!.credentials.get(ctx, id);
    expect([current.value, current.metadata.version]).toEqual([value, 2]);
    // Left over: based on version 1, which is no longer current.
    expect(await s!.rotation.pendingRotation(ctx, id)).toMatchObject({ credentialId: id, basedOnVersion: 1 });

    await s!.rotation.rotate(ctx, id, { reason: 'manual' });
    expect(minted).toHaveLength(1);
    const after = await s!.credentials.get(ctx, id);
    expect([after.value, after.metadata.version]).toEqual([minted[0], 3]);
    expect(await s!.rotation.pendingRotation(ctx, id)).toBeNull();
  });
});
