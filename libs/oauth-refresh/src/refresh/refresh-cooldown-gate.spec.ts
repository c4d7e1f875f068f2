import { Logger } from '@nestjs/common';
import { CooldownPolicy, InProcessOAuthRefreshCooldowns, OAuthRefreshCooldowns } from '../store/oauth-refresh-cooldowns';
import { MAX_PROVIDER_RETRY_AFTER_MS, RefreshCooldownGate } from './refresh-cooldown-gate';

const policy: CooldownPolicy = { baseMs: 30_000, maxMs: 100_000 };
const t0 = new Date('2026-03-01T00:00:00Z');
const at = (ms: number) => new Date(t0.getTime() + ms);
const logger = { warn: jest.fn() } as unknown as Logger;

/** A store whose backend is down. */
class Broken extends OAuthRefreshCooldowns {
  activeUntil(): Promise<Date | undefined> {
    return Promise.reject(new Error('backend down'));
  }
  recordFailure(): Promise<{ until: Date; failures: number }> {
    return Promise.reject(new Error('backend down'));
  }
  clear(): Promise<void> {
    return Promise.reject(new Error('backend down'));
  }
}

describe('RefreshCooldownGate', () => {
  it('without a store: cooldowns in this process, growing per consecutive failure up to the cap, cleared by a success', async () => {
    const gate = new RefreshCooldownGate(undefined, policy, logger);
    expect(await gate.recordFailure('k', t0)).toEqual({ until: at(30_000), failures: 1 });
    expect(await gate.activeUntil('k', at(29_999))).toEqual(at(30_000));
    expect(await gate.activeUntil('k', at(30_000))).toBeUndefined();
    expect(await gate.recordFailure('k', at(30_000))).toEqual({ until: at(90_000), failures: 2 });
    expect(await gate.recordFailure('k', at(90_000))).toEqual({ until: at(190_000), failures: 3 }); // capped at 100 s
    await gate.clear('k');
    expect(await gate.activeUntil('k', at(90_001))).toBeUndefined();
    expect(await gate.recordFailure('k', at(200_000))).toMatchObject({ failures: 1 });
  });

  it("lasts at least the provider's Retry-After, even past the cap (up to an hour), in this process and through a store", async () => {
    for (const gate of [new RefreshCooldownGate(undefined, policy, logger), new RefreshCooldownGate(new InProcessOAuthRefreshCooldowns(), policy, logger)]) {
      expect(await gate.recordFailure('k', t0, 600_000)).toEqual({ until: at(600_000), failures: 1 });
      expect(await gate.activeUntil('k', at(599_999))).toEqual(at(600_000));
      expect(await gate.recordFailure('k', at(600_000), 1_000)).toEqual({ until: at(660_000), failures: 2 }); // the policy's own is longer
      expect(await gate.recordFailure('k', at(660_000), 86_400_000)).toEqual({ until: at(660_000 + MAX_PROVIDER_RETRY_AFTER_MS), failures: 3 });
    }
  });

  it('shares state through the given store: two gates (two replicas) on one store see each other’s cooldowns', async () => {
    const store = new InProcessOAuthRefreshCooldowns();
    const [a, b] = [new RefreshCooldownGate(store, policy, logger), new RefreshCooldownGate(store, policy, logger)];
    await a.recordFailure('k', t0);
    expect(await b.activeUntil('k', at(1000))).toEqual(at(30_000));
    expect(await b.recordFailure('k', at(30_000))).toMatchObject({ failures: 2 });
    await a.clear('k');
    expect(await b.activeUntil('k', at(30_001))).toBeUndefined();
  });

  it('a failing store never fails the caller: the call is logged and answered from this process', async () => {
    const gate = new RefreshCooldownGate(new Broken(), policy, logger);
    expect(await gate.recordFailure('k', t0)).toEqual({ until: at(30_000), failures: 1 });
    expect(await gate.activeUntil('k', at(1000))).toEqual(at(30_000));
    await expect(gate.clear('k')).resolves.toBeUndefined();
    expect(await gate.activeUntil('k', at(1000))).toBeUndefined();
    expect(logger.warn).toHaveBeenCalled();
  });
});
