/**
 * Integration: the orphan-versions job while the host's vault identity lacks the list permission (403 FORBIDDEN from
 * the local vault through the real SDK, SQLite). A refusal shared by every secret fails the run once, with the code —
 * not one warning per credential secret, each after a call the vault refuses alike.
 */
import { randomBytes } from 'node:crypto';
import type { OperationContext } from '@app/common';
import { KeyVaultErrorCode } from '@app/key-vault';
import { CapturingLogger, rejection } from '@app/testing';
import { CredentialOrphanVersions } from '../index';
import { startOrphanVersionsStack, type OrphanVersionsStack } from '../testing/orphan-versions-stack';

describe('the orphan-versions job while the vault denies listing (sqlite)', () => {
  let stack: OrphanVersionsStack;
  const logger = new CapturingLogger();
  const ctx: OperationContext = { tenantId: `orph_deny_${randomBytes(3).toString('hex')}`, actor: { id: 'user:ops' } };

  beforeAll(async () => {
    stack = await startOrphanVersionsStack('sqlite', ctx, 6, logger);
  });
  afterEach(() => stack.emu.clearDenials());
  afterAll(() => stack?.close());

  it.each(['listSecrets', 'listSecretVersions'])('%s denied: the run fails once with FORBIDDEN, one vault refusal, no warning per secret', async (operation) => {
    stack.emu.deny({ operations: [operation] });
    stack.emu.resetStats();
    logger.lines.length = 0;
    const e = (await rejection(stack.moduleRef.get(CredentialOrphanVersions).runOnce())) as { code?: number; message: string };
    expect(e.code).toBe(KeyVaultErrorCode.FORBIDDEN);
    expect(e.message).toMatch(/FORBIDDEN/);
    expect(stack.emu.stats().byOperationAndStatus[`${operation}:403`]).toBe(1);
    expect(logger.lines.filter((l) => l.startsWith('warn '))).toEqual([]);

    stack.emu.clearDenials();
    expect(await stack.moduleRef.get(CredentialOrphanVersions).runOnce()).toMatchObject({ acquired: true, failed: 0, passComplete: true });
  });
});
