import { EmulatorSubscription, KeyVaultEmulator } from './index';
import { emulatorSecretClient, restError } from './testing';

/** Azure's subscription-wide limit (five times a vault's) over vaults of one process, through the real SDK. */
describe('Key Vault emulator: vaults of one subscription', () => {
  const vaults: KeyVaultEmulator[] = [];
  afterAll(() => Promise.all(vaults.map((v) => v.stop())));

  it("throttles the vaults of a subscription together at five times a vault's limit, each vault within its own", async () => {
    // Each vault: 4 transactions per minute; the subscription: 5 × 1 = 5 (limits small enough to count by hand).
    const subscription = new EmulatorSubscription({ limit: 1, windowMs: 60_000 });
    const start = (sub?: EmulatorSubscription) => KeyVaultEmulator.start({ quiet: true, throttle: { limit: 4, windowMs: 60_000 }, subscription: sub });
    const [a, b, alone] = await Promise.all([start(subscription), start(subscription), start()]);
    vaults.push(a, b, alone);
    const [ca, cb, cAlone] = [a, b, alone].map((v) => emulatorSecretClient(v, { maxRetries: 0 }));

    for (let i = 0; i < 4; i++) expect((await restError(ca.getSecret('x'))).statusCode).toBe(404);
    const vaultFull = await restError(ca.getSecret('x'));
    expect([vaultFull.statusCode, vaultFull.code]).toEqual([429, 'Throttled']);
    // Vault b has used nothing of its own 4, but the subscription has one transaction left.
    expect((await restError(cb.getSecret('x'))).statusCode).toBe(404);
    const subscriptionFull = await restError(cb.getSecret('x'));
    expect(subscriptionFull.statusCode).toBe(429);
    expect(Number(subscriptionFull.response!.headers.get('retry-after'))).toBeGreaterThan(50);
    expect(b.stats().byOperationAndStatus).toMatchObject({ 'getSecret:404': 1, 'getSecret:429': 1 });
    // A vault of another subscription is not affected.
    for (let i = 0; i < 4; i++) expect((await restError(cAlone.getSecret('x'))).statusCode).toBe(404);
  });

  it('refuses a subscription option that is not one', async () => {
    await expect(KeyVaultEmulator.start({ quiet: true, subscription: {} as EmulatorSubscription })).rejects.toThrow(/subscription must be an EmulatorSubscription/);
  });
});
