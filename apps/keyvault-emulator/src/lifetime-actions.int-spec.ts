import { KeyClient, KeyVaultKey } from '@azure/keyvault-keys';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyVaultEmulator } from './index';
import { emulatorKeyClient, rawRequest } from './testing';

const DAY = 86_400_000;

/** The versions of a key, oldest first (by creation, then id). */
async function versionsOf(client: KeyClient, name: string) {
  const out = [];
  for await (const p of client.listPropertiesOfKeyVersions(name)) out.push(p);
  return out.sort((a, b) => a.createdOn!.getTime() - b.createdOn!.getTime() || (a.version! < b.version! ? -1 : 1));
}

describe('Key Vault emulator: rotation policies act (auto-rotation, near-expiry notification) on the vault clock', () => {
  let emu: KeyVaultEmulator;
  let client: KeyClient;
  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    client = emulatorKeyClient(emu, { maxRetries: 0 });
  });
  afterAll(() => emu?.stop());

  it('Rotate timeAfterCreate: nothing before it is due, then one new version like a rotate call (type, key_ops, tags; exp from expiryTime), never twice', async () => {
    const first = await client.createEcKey('after-create', { curve: 'P-384', keyOps: ['sign', 'verify'], tags: { team: 'payments' } });
    await client.updateKeyRotationPolicy('after-create', { expiresIn: 'P90D', lifetimeActions: [{ action: 'Rotate', timeAfterCreate: 'P30D' }] });

    await emu.advanceTime(30 * DAY - 60_000);
    expect((await versionsOf(client, 'after-create')).map((v) => v.version)).toEqual([first.properties.version]);

    // The vault clock also runs in real time: the rotation's second is between these two readings.
    const due = emu.now().getTime() + 60_000;
    const done = await emu.advanceTime(60_000);
    const latest = await client.getKey('after-create');
    const seen = emu.now().getTime();
    expect(latest.properties.version).not.toBe(first.properties.version);
    expect(done.rotated).toEqual([{ name: 'after-create', version: latest.properties.version }]);
    expect([latest.keyType, latest.key!.crv, latest.keyOperations, latest.properties.tags]).toEqual(['EC', 'P-384', ['sign', 'verify'], { team: 'payments' }]);
    expect(latest.key!.x).not.toBe(first.key!.x);
    const createdOn = latest.properties.createdOn!.getTime();
    expect(createdOn % 1000).toBe(0);
    expect(createdOn >= Math.floor(due / 1000) * 1000 && createdOn <= Math.floor(seen / 1000) * 1000).toBe(true);
    expect((latest.properties.expiresOn!.getTime() - latest.properties.createdOn!.getTime()) / DAY).toBe(90);
    // The earlier version keeps its (absent) expiry and stays usable by version.
    expect((await client.getKey('after-create', { version: first.properties.version })).properties.expiresOn).toBeUndefined();

    for (let i = 0; i < 3; i++) expect((await emu.runLifetimeActions()).rotated).toEqual([]);
    await emu.advanceTime(29 * DAY);
    expect(await versionsOf(client, 'after-create')).toHaveLength(2);
    // 30 days after the new version's creation it is rotated in turn.
    await emu.advanceTime(DAY);
    expect(await versionsOf(client, 'after-create')).toHaveLength(3);
  });

  it('Rotate timeBeforeExpiry: rotates the current version that long before its exp; a version without exp never', async () => {
    const exp = new Date(emu.now().getTime() + 40 * DAY);
    const first = await client.createEcKey('before-expiry', { expiresOn: exp });
    await client.createEcKey('no-exp');
    const policy = { expiresIn: 'P40D', lifetimeActions: [{ action: 'Rotate' as const, timeBeforeExpiry: 'P10D' }] };
    await client.updateKeyRotationPolicy('before-expiry', policy);
    await client.updateKeyRotationPolicy('no-exp', policy);

    await emu.advanceTime(30 * DAY - 60_000);
    expect(await versionsOf(client, 'before-expiry')).toHaveLength(1);
    await emu.advanceTime(60_000);
    const versions = await versionsOf(client, 'before-expiry');
    expect(versions.map((v) => v.version)).toEqual([first.properties.version, expect.any(String)]);
    const latest = versions[1];
    expect((latest.expiresOn!.getTime() - latest.createdOn!.getTime()) / DAY).toBe(40);
    expect(await versionsOf(client, 'no-exp')).toHaveLength(1);
    for (let i = 0; i < 3; i++) await emu.runLifetimeActions();
    expect(await versionsOf(client, 'before-expiry')).toHaveLength(2);
  });

  it('Notify timeBeforeExpiry: one KeyNearExpiry event per version in the emulator event list (GET /_emulator/events), nothing rotated', async () => {
    const key = await client.createEcKey('notified', { expiresOn: new Date(emu.now().getTime() + 40 * DAY) });
    await client.updateKeyRotationPolicy('notified', { expiresIn: 'P40D', lifetimeActions: [{ action: 'Notify', timeBeforeExpiry: 'P10D' }] });
    const nearExpiry = (events: Array<{ eventType: string; subject: string }>) => events.filter((e) => e.eventType === 'Microsoft.KeyVault.KeyNearExpiry' && e.subject === 'notified');

    await emu.advanceTime(30 * DAY - 60_000);
    expect(nearExpiry(emu.events())).toEqual([]);
    await emu.advanceTime(60_000);
    await emu.runLifetimeActions();
    const events = await rawRequest(emu, 'GET', '/_emulator/events', { token: null });
    expect(events.status).toBe(200);
    expect(nearExpiry(events.json.events)).toEqual([
      {
        eventType: 'Microsoft.KeyVault.KeyNearExpiry',
        subject: 'notified',
        eventTime: expect.any(String),
        data: {
          Id: key.id,
          VaultName: 'emulator',
          ObjectType: 'Key',
          ObjectName: 'notified',
          Version: key.properties.version,
          NBF: null,
          EXP: Math.floor(key.properties.expiresOn!.getTime() / 1000),
        },
      },
    ]);
    expect(await versionsOf(client, 'notified')).toHaveLength(1);
    // Deliberately no private key or other key material in an event.
    expect(JSON.stringify(events.json)).not.toMatch(/PRIVATE KEY/);
  });

  it('over the admin API: POST /_emulator/time advances the clock and acts; POST /_emulator/lifetime-actions acts at once; bad input is 400 and changes nothing', async () => {
    await client.createEcKey('over-http');
    await client.updateKeyRotationPolicy('over-http', { lifetimeActions: [{ action: 'Rotate', timeAfterCreate: 'P7D' }] });
    const before = emu.now().getTime();
    for (const body of [{}, { advanceMs: -1 }, { advanceMs: 'P7D' }, { advanceMs: 1.5 }]) {
      const bad = await rawRequest(emu, 'POST', '/_emulator/time', { token: null, body });
      expect([bad.status, bad.json.error.code]).toEqual([400, 'BadParameter']);
    }
    expect(Math.abs(emu.now().getTime() - before)).toBeLessThan(5_000);
    const moved = await rawRequest(emu, 'POST', '/_emulator/time', { token: null, body: { advanceMs: 7 * DAY } });
    expect(moved.status).toBe(200);
    expect(moved.json.rotated).toEqual([{ name: 'over-http', version: (await client.getKey('over-http')).properties.version }]);
    expect(Date.parse(moved.json.now) - before).toBeGreaterThanOrEqual(7 * DAY);
    const again = await rawRequest(emu, 'POST', '/_emulator/lifetime-actions', { token: null });
    expect([again.status, again.json.rotated]).toEqual([200, []]);
    expect(await versionsOf(client, 'over-http')).toHaveLength(2);
  });
});

describe('Key Vault emulator: an injected clock, and rotation policies of a persisted vault', () => {
  it('acts by itself every lifetimeActionsCheckMs, without being asked', async () => {
    let t = Date.now();
    const emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, lifetimeActionsCheckMs: 50, now: () => t });
    try {
      const client = emulatorKeyClient(emu, { maxRetries: 0 });
      await client.createEcKey('by-itself');
      await client.updateKeyRotationPolicy('by-itself', { lifetimeActions: [{ action: 'Rotate', timeAfterCreate: 'P7D' }] });
      t += 7 * DAY;
      const deadline = Date.now() + 5_000;
      while ((await versionsOf(client, 'by-itself')).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(await versionsOf(client, 'by-itself')).toHaveLength(2);
    } finally {
      await emu.stop();
    }
  });

  it('takes its time from `now`; a restarted vault keeps its policies and acts on them; rotated versions survive a restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kv-lifetime-'));
    let t = Date.parse('2026-03-01T00:00:00Z');
    const start = () => KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0, dataDir, now: () => t });
    let emu = await start();
    try {
      let client = emulatorKeyClient(emu, { maxRetries: 0 });
      const first: KeyVaultKey = await client.createEcKey('persisted');
      expect(first.properties.createdOn).toEqual(new Date(t));
      await client.updateKeyRotationPolicy('persisted', { expiresIn: 'P60D', lifetimeActions: [{ action: 'Rotate', timeAfterCreate: 'P30D' }] });
      await emu.stop();

      t += 30 * DAY;
      emu = await start();
      client = emulatorKeyClient(emu, { maxRetries: 0 });
      const { rotated } = await emu.runLifetimeActions();
      expect(rotated).toHaveLength(1);
      await emu.stop();

      emu = await start();
      client = emulatorKeyClient(emu, { maxRetries: 0 });
      const latest = await client.getKey('persisted');
      expect(latest.properties.version).toBe(rotated[0].version);
      expect([latest.properties.createdOn, latest.properties.expiresOn]).toEqual([new Date(t), new Date(Date.parse('2026-05-30T00:00:00Z'))]);
      expect((await client.getKeyRotationPolicy('persisted')).lifetimeActions).toEqual([{ action: 'Rotate', timeAfterCreate: 'P30D' }]);
      expect((await emu.runLifetimeActions()).rotated).toEqual([]);
    } finally {
      await emu.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
