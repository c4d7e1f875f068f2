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

  it("keeps a failure's cause with its cooldown: another gate on the store answers it, the next failure without one replaces it, a cause it does not record is dropped", async () => {
    const store = new InProcessOAuthRefreshCooldowns();
    const [a, b] = [new RefreshCooldownGate(store, policy, logger), new RefreshCooldownGate(store, policy, logger)];
    const cause = { code: 'OAUTH_CLIENT_REJECTED' as const, status: 401, oauthError: 'invalid_client' };
    await a.recordFailure('k', t0, undefined, cause);
    expect(await b.activeCooldown('k', at(1000))).toEqual({ until: at(30_000), cause });
    expect(await b.activeCooldown('k', at(30_000))).toBeUndefined();
    await b.recordFailure('k', at(30_000)); // a failure of another kind
    expect(await a.activeCooldown('k', at(30_001))).toEqual({ until: at(90_000) });
    await a.clear('k');
    // What a store hands back is checked: an unknown code is no cause; an OAuth error not registered is not repeated.
    await store.recordFailure('k', t0, policy, { code: 'SOMETHING_ELSE' } as unknown as typeof cause);
    expect(await a.activeCooldown('k', at(1))).toEqual({ until: at(30_000) });
    await store.recordFailure('k', at(30_000), policy, { code: 'OAUTH_CLIENT_REJECTED', status: 9999, oauthError: 'refresh-token-echoed' });
    expect(await a.activeCooldown('k', at(30_001))).toEqual({ until: at(90_000), cause: { code: 'OAUTH_CLIENT_REJECTED', oauthError: 'unregistered_error' } });
  });

  it("a store written before causes existed (no activeCooldown of its own): the gate that saw the refusal answers its cooldown with it, as before; other gates, and a later cooldown, without", async () => {
    class UntilOnly extends OAuthRefreshCooldowns {
      private readonly inner = new InProcessOAuthRefreshCooldowns();
      activeUntil(key: string, now: Date): Promise<Date | undefined> {
        return this.inner.activeUntil(key, now);
      }
      recordFailure(key: string, now: Date, p: CooldownPolicy): Promise<{ until: Date; failures: number }> {
        return this.inner.recordFailure(key, now, p);
      }
      clear(key: string): Promise<void> {
        return this.inner.clear(key);
      }
    }
    const inner = new UntilOnly();
    // Also one given as a plain object (useValue) with the three methods a store had.
    const plain = { activeUntil: (k: string, n: Date) => inner.activeUntil(k, n), recordFailure: (k: string, n: Date, p: CooldownPolicy) => inner.recordFailure(k, n, p), clear: (k: string) => inner.clear(k) };
    for (const store of [inner, plain as unknown as OAuthRefreshCooldowns]) {
      const [gate, other] = [new RefreshCooldownGate(store, policy, logger), new RefreshCooldownGate(store, policy, logger)];
      const cause = { code: 'OAUTH_CLIENT_REJECTED' as const, status: 401 };
      await gate.recordFailure('k', t0, undefined, cause);
      // This process saw the refusal: its answer stays 4009 while the cooldown lasts (the previous release did so too).
      expect(await gate.activeCooldown('k', at(1))).toEqual({ until: at(30_000), cause });
      expect(await other.activeCooldown('k', at(1))).toEqual({ until: at(30_000) });
      // A later cooldown another replica recorded (a passing outage) is not answered with that refusal.
      await other.recordFailure('k', at(30_000));
      expect(await gate.activeCooldown('k', at(30_001))).toEqual({ until: at(90_000) });
      await gate.recordFailure('k', at(90_000), undefined, cause);
      await gate.clear('k');
      expect(await gate.activeCooldown('k', at(90_001))).toBeUndefined();
      await gate.recordFailure('k', at(90_001));
      expect(await gate.activeCooldown('k', at(90_002))).toEqual({ until: at(120_001) });
      await gate.clear('k');
    }
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
