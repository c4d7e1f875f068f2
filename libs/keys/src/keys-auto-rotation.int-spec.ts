/**
 * Integration: a key the vault rotates by itself (its rotation policy, set outside the service) — what an app
 * embedding KeysModule sees. The local vault and the service share one manual clock, so 30 days pass at once; the
 * real SDK over HTTPS, the real audit on SQLite.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Test, type TestingModule } from '@nestjs/testing';
import { ManualClock, type OperationContext } from '@app/common';
import { emulatorKeyClient, KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, type TestDatabase } from '@app/testing';
import { KeysModule, KeysService } from './index';
import { tenantKeyVaultName } from './naming/tenant-key-name';

const DAY = 86_400_000;
const TTL_MS = 60_000;

describe('KeysService and a key the vault auto-rotates (rotation policy, local vault)', () => {
  // From the real time: the SDK's CryptographyClient checks a key's expiry against the machine's clock.
  const clock = new ManualClock(new Date());
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let moduleRef: TestingModule;
  let keys: KeysService;
  const ctx: OperationContext = { tenantId: `auto-${randomBytes(3).toString('hex')}`, actor: { id: 'user:alice' } };
  const digest = new Uint8Array(createHash('sha256').update('payload').digest());

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0, lifetimeActionsCheckMs: 0, now: () => clock.now().getTime() });
    db = await createTestDatabase('sqlite');
    moduleRef = await Test.createTestingModule({
      imports: [...credentialsStackImports({ database: db.options, vault: emu }), KeysModule.forRoot({ keyCacheTtlMs: TTL_MS, clock })],
    }).compile();
    await moduleRef.init();
    keys = moduleRef.get(KeysService);
  }, 60_000);

  afterAll(async () => {
    await moduleRef?.close();
    await emu?.stop();
    await db?.drop();
  });

  it('new operations use the version the vault rotated to within keyCacheTtlMs; the old one stays usable by version', async () => {
    const created = await keys.createKey(ctx, { name: 'auto', type: 'RSA' });
    await emulatorKeyClient(emu).updateKeyRotationPolicy(tenantKeyVaultName(ctx.tenantId, 'auto', 'cv'), {
      expiresIn: 'P90D',
      lifetimeActions: [{ action: 'Rotate', timeAfterCreate: 'P30D' }],
    });

    // Just before the rotation is due: the service reads the key again (its entry is stale) and caches v1.
    clock.advance(30 * DAY - 10_000);
    expect((await emu.runLifetimeActions()).rotated).toEqual([]);
    expect((await keys.sign(ctx, { name: 'auto', algorithm: 'RS256', digest })).version).toBe(created.version);

    clock.advance(10_000);
    const { rotated } = await emu.runLifetimeActions();
    expect(rotated).toHaveLength(1);
    const v2 = rotated[0].version;
    expect((await emulatorKeyClient(emu).getKey(tenantKeyVaultName(ctx.tenantId, 'auto', 'cv'))).properties.version).toBe(v2);

    // Within keyCacheTtlMs of its read the entry may still name v1 (the README's bound)...
    clock.advance(TTL_MS - 10_001);
    const late = await keys.sign(ctx, { name: 'auto', algorithm: 'RS256', digest });
    expect([created.version, v2]).toContain(late.version);
    // ...and once that entry is keyCacheTtlMs old, every new operation uses the vault's new version.
    clock.advance(1);
    const signed = await keys.sign(ctx, { name: 'auto', algorithm: 'RS256', digest });
    expect(signed.version).toBe(v2);
    expect(await keys.verify(ctx, { name: 'auto', version: v2, algorithm: 'RS256', digest, signature: signed.signature })).toMatchObject({ valid: true, verifiedIn: 'local' });
    const sealed = await keys.encrypt(ctx, { name: 'auto', algorithm: 'RSA-OAEP', plaintext: new Uint8Array([1, 2, 3]) });
    expect(sealed.version).toBe(v2);
    expect((await keys.decrypt(ctx, { name: 'auto', version: v2, algorithm: 'RSA-OAEP', ciphertext: sealed.ciphertext })).plaintext).toEqual(new Uint8Array([1, 2, 3]));

    // The new version carries the policy's expiry; the old one is still there and usable by version.
    const details = await keys.getKey(ctx, 'auto');
    expect((details.expiresOn!.getTime() - details.createdOn!.getTime()) / DAY).toBe(90);
    expect((await keys.sign(ctx, { name: 'auto', version: created.version, algorithm: 'RS256', digest })).version).toBe(created.version);
  });
});
