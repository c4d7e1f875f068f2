import { createHash } from 'node:crypto';
import { Logger, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import { ManualClock, type OperationContext } from '@app/common';
import { KeyVaultKeysProvider } from '@app/key-vault';
import { KeysModule } from '../keys.module';
import { KeysService } from '../keys.service';
import { tenantKeyVaultName } from '../naming/tenant-key-name';
import { FakeVaultKeys } from '../testing/fake-vault-keys';
import { KeyChangeFanOut } from './key-change-fan-out';

/** A fan-out the test drives: which generation is heard (none: a gap), what other replicas announce. */
class FakeFanOut extends KeyChangeFanOut {
  generation: number | undefined = 1;
  readonly announced: string[] = [];
  fail = false;
  readonly listeners = new Set<(names: readonly string[]) => void>();
  heardGeneration(): number | undefined {
    return this.generation;
  }
  async announce(names: readonly string[]): Promise<void> {
    if (this.fail) throw Object.assign(new Error('publish failed'), { code: 'ECONNREFUSED' });
    this.announced.push(...names);
  }
  listen(listener: (names: readonly string[]) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }
  /** Another replica announces a change. */
  deliver(names: string[]): void {
    for (const listener of this.listeners) listener(names);
  }
}

const ctx: OperationContext = { tenantId: 'acme', actor: { id: 'user:alice' } };
const digest = new Uint8Array(createHash('sha256').update('payload').digest());
const vaultName = (name: string) => tenantKeyVaultName('acme', name, 'cv');

async function setup() {
  const vault = new FakeVaultKeys();
  const fanOut = new FakeFanOut();
  const audit = { record: async () => ({}) as never, recordRead: async () => undefined };
  @Module({ providers: [{ provide: KeyChangeFanOut, useValue: fanOut }], exports: [KeyChangeFanOut] })
  class FanOutModule {}
  const moduleRef = await Test.createTestingModule({
    imports: [KeysModule.forRootAsync({ imports: [FanOutModule], useFactory: () => ({ clock: new ManualClock(new Date('2026-12-01T00:00:00Z')) }) })],
  })
    .useMocker((token) => (token === KeyVaultKeysProvider ? vault : token === AuditService ? audit : undefined))
    .compile();
  const keys = moduleRef.get(KeysService);
  await keys.createKey(ctx, { name: 'signer', type: 'RSA' });
  const { signature } = await keys.sign(ctx, { name: 'signer', algorithm: 'RS256', digest });
  const lookups = () => vault.calls.getKey ?? 0;
  const verify = () => keys.verify(ctx, { name: 'signer', algorithm: 'RS256', digest, signature });
  return { vault, fanOut, keys, moduleRef, lookups, verify };
}

describe('KeysService with a KeyChangeFanOut (key changes across replicas)', () => {
  it('the warm path asks the fan-out nothing over the network: repeated local verifies read the key once', async () => {
    const { fanOut, lookups, verify } = await setup();
    const before = lookups();
    for (let i = 0; i < 20; i++) expect(await verify()).toMatchObject({ valid: true, verifiedIn: 'local' });
    expect(lookups()).toBe(before);
    expect(fanOut.announced).toEqual([vaultName('signer')]); // the create only
  });

  it('announces every change it makes (create, update, rotate, delete, purge) by vault name', async () => {
    const { fanOut, keys } = await setup();
    await keys.updateKeyProperties(ctx, 'signer', { enabled: false });
    await keys.rotateKey(ctx, 'signer');
    await keys.deleteKey(ctx, 'signer');
    await keys.purgeKey(ctx, 'signer');
    expect(fanOut.announced).toEqual(Array(5).fill(vaultName('signer')));
  });

  it("drops a key another replica announced: the next use reads it from the vault, then caches it again", async () => {
    const { fanOut, lookups, verify } = await setup();
    await verify();
    const before = lookups();
    fanOut.deliver([vaultName('signer').toUpperCase()]); // vault names are case-insensitive
    await verify();
    await verify();
    expect(lookups()).toBe(before + 1);
  });

  it('while the fan-out is not heard nothing cached is trusted (each use reads the vault, nothing kept); after the gap what was cached before it is read again', async () => {
    const { fanOut, lookups, verify } = await setup();
    await verify();
    let before = lookups();
    fanOut.generation = undefined;
    await verify();
    await verify();
    expect(lookups()).toBe(before + 2);
    fanOut.generation = 2;
    before = lookups();
    await verify();
    await verify();
    expect(lookups()).toBe(before + 1);
    // A gap that ended: generation 2's entries are not trusted under 3.
    fanOut.generation = 3;
    await verify();
    expect(lookups()).toBe(before + 2);
  });

  it('a change that could not be announced still succeeds (the vault has it), and is logged without the key name', async () => {
    const { fanOut, keys } = await setup();
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      fanOut.fail = true;
      expect(await keys.updateKeyProperties(ctx, 'signer', { enabled: false })).toMatchObject({ enabled: false });
      expect(warn.mock.calls.map(([m]) => String(m))).toEqual([
        'a key change could not be announced to the other replicas (ECONNREFUSED): they may use their cached copy for up to keyCacheTtlMs (60000 ms)',
      ]);
    } finally {
      warn.mockRestore();
    }
  });

  it('stops hearing the fan-out when the module closes', async () => {
    const { fanOut, moduleRef } = await setup();
    expect(fanOut.listeners.size).toBe(1);
    await moduleRef.close();
    expect(fanOut.listeners.size).toBe(0);
  });
});
