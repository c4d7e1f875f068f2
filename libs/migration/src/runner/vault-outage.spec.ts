import { KeyVaultError, KeyVaultErrorCode } from '@app/key-vault';
import { VaultOutage } from './vault-outage';

const failure = (code: KeyVaultErrorCode, retryAfterMs?: number) => new KeyVaultError(code, `Writing the secret failed: ${KeyVaultErrorCode[code]}`, { operation: 'setSecret', retryAfterMs });
const quiet = { warn: jest.fn(), log: jest.fn() };

describe('VaultOutage', () => {
  afterEach(() => jest.useRealTimers());

  it('knows what a vault in an outage answers: the breaker open, 5xx and timeouts past the retries — not a refusal, a throttle or a caller who left', () => {
    expect(VaultOutage.isOutage(failure(KeyVaultErrorCode.CIRCUIT_OPEN))).toBe(true);
    // A 5xx or a timeout once the client's retries are spent is that call's failure: one secret failing must not stop the run.
    for (const code of [KeyVaultErrorCode.SERVICE_UNAVAILABLE, KeyVaultErrorCode.TIMEOUT, KeyVaultErrorCode.FORBIDDEN, KeyVaultErrorCode.RATE_LIMITED, KeyVaultErrorCode.CANCELLED, KeyVaultErrorCode.KEY_NOT_FOUND]) {
      expect(VaultOutage.isOutage(failure(code))).toBe(false);
    }
    expect(VaultOutage.isOutage(new Error('CIRCUIT_OPEN'))).toBe(false);
    expect(VaultOutage.isOutageCode('CIRCUIT_OPEN')).toBe(true);
    expect(VaultOutage.isOutageCode('FORBIDDEN')).toBe(false);
  });

  it("waits until the open breaker lets a trial through (its retryAfterMs), else a second; never past the outage's bound", () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const o = new VaultOutage(5000, quiet);
    expect(o.failed(failure(KeyVaultErrorCode.CIRCUIT_OPEN, 300), Date.now())).toBe(300);
    expect(o.failed(failure(KeyVaultErrorCode.SERVICE_UNAVAILABLE), Date.now())).toBe(1000);
    jest.advanceTimersByTime(4800);
    expect(o.failed(failure(KeyVaultErrorCode.CIRCUIT_OPEN, 30_000), Date.now())).toBe(200);
    expect(o.expired).toBeUndefined();
  });

  it('expires once the outage lasted maxMs from its first failure: every call that meets it then gives up', () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const o = new VaultOutage(1000, quiet);
    const first = failure(KeyVaultErrorCode.CIRCUIT_OPEN, 300);
    expect(o.failed(first, Date.now())).toBe(300);
    jest.advanceTimersByTime(600);
    // A call whose own first failure is later still gives up at the outage's bound.
    const late = Date.now();
    expect(o.failed(failure(KeyVaultErrorCode.CIRCUIT_OPEN, 300), late)).toBe(300);
    jest.advanceTimersByTime(400);
    const last = failure(KeyVaultErrorCode.CIRCUIT_OPEN, 300);
    expect(o.failed(last, late)).toBeUndefined();
    expect(o.expired).toBe(last);
    expect(o.failed(failure(KeyVaultErrorCode.SERVICE_UNAVAILABLE), Date.now())).toBeUndefined();
  });

  it('ends at the first call that succeeds; a call failing on and off for longer than maxMs still gives up (a vault that never gets it through)', () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const o = new VaultOutage(1000, quiet);
    const callSince = Date.now();
    o.failed(failure(KeyVaultErrorCode.SERVICE_UNAVAILABLE), callSince);
    jest.advanceTimersByTime(900);
    o.answered(); // another call got through: the outage is over, but not this call's
    expect(o.failed(failure(KeyVaultErrorCode.SERVICE_UNAVAILABLE), callSince)).toBe(100);
    // A new outage, from a call of its own: its bound starts now.
    expect(o.failed(failure(KeyVaultErrorCode.SERVICE_UNAVAILABLE), Date.now())).toBe(1000);
    jest.advanceTimersByTime(100);
    expect(o.failed(failure(KeyVaultErrorCode.SERVICE_UNAVAILABLE), callSince)).toBeUndefined();
  });

  it('maxMs 0: gives up at the first failure', () => {
    const o = new VaultOutage(0, quiet);
    expect(o.failed(failure(KeyVaultErrorCode.CIRCUIT_OPEN, 300), Date.now())).toBeUndefined();
    expect(o.expired?.code).toBe(KeyVaultErrorCode.CIRCUIT_OPEN);
  });

  it('holds new groups back until the wait is over, or the signal aborts', async () => {
    const o = new VaultOutage(5000, quiet);
    expect(await o.paused()).toBe(false);
    o.failed(failure(KeyVaultErrorCode.CIRCUIT_OPEN, 150), Date.now());
    let t0 = Date.now();
    expect(await o.paused()).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    o.failed(failure(KeyVaultErrorCode.CIRCUIT_OPEN, 5000), Date.now());
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 20);
    t0 = Date.now();
    expect(await o.paused(ac.signal)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});
