import { isOutboxDeferral } from '@app/common';
import { KeyVaultError, KeyVaultErrorCode } from '@app/key-vault';
import { VaultOutageLog } from './vault-outage';

const vaultError = (code: KeyVaultErrorCode, cause?: unknown) => new KeyVaultError(code, `vault failed: ${KeyVaultErrorCode[code]}`, { operation: 'updateSecretProperties', cause });

/** An outbox handler's vault attempts, minute by minute, while the vault is away — then once it answers. */
describe('VaultOutageLog', () => {
  beforeEach(() => jest.useFakeTimers({ now: 0 }));
  afterEach(() => jest.useRealTimers());

  function build(pending = 4) {
    const lines: string[] = [];
    const logger = { warn: (m: string) => lines.push(`warn ${m}`), log: (m: string) => lines.push(`info ${m}`) };
    const counted = jest.fn(async () => pending);
    const outage = new VaultOutageLog(logger, { waiting: (n) => `${n ?? 'some'} deletes wait`, resumed: 'deletes go on' }, counted);
    return { outage, lines, counted };
  }

  it('an unreachable vault (circuit open, 5xx, timeout, a lost answer) defers the event: said once with the events waiting, each minute, its end once', async () => {
    const { outage, lines, counted } = build();
    const causes = [
      vaultError(KeyVaultErrorCode.SERVICE_UNAVAILABLE),
      vaultError(KeyVaultErrorCode.TIMEOUT),
      vaultError(KeyVaultErrorCode.CIRCUIT_OPEN),
      vaultError(KeyVaultErrorCode.OUTCOME_UNKNOWN, vaultError(KeyVaultErrorCode.SERVICE_UNAVAILABLE)),
    ];
    // An attempt each 2 s (four events at their backoff) for 130 s.
    for (let t = 0, i = 0; t <= 130_000; t += 2_000, i++) {
      jest.setSystemTime(t);
      const deferred = await outage.deferral(causes[i % causes.length]);
      expect(isOutboxDeferral(deferred)).toBe(true);
    }
    jest.setSystemTime(131_000);
    outage.answered();
    outage.answered();
    expect(lines).toEqual([
      'warn Key Vault is unreachable (KeyVaultError(SERVICE_UNAVAILABLE)): 4 deletes wait; the outbox retries them with its backoff (logged again each minute it lasts, and once the vault answers again)',
      'warn Key Vault unreachable for 60 s (31 failed attempts): 4 deletes wait; the outbox retries them with its backoff',
      'warn Key Vault unreachable for 120 s (61 failed attempts): 4 deletes wait; the outbox retries them with its backoff',
      'info Key Vault answers again after 131 s (66 failed attempts): deletes go on',
    ]);
    // Counted only for a line: not a query per attempt.
    expect(counted).toHaveBeenCalledTimes(3);
  });

  it('a vault refusing the work (403, 400) is no outage: left to the caller, who warns at each attempt', async () => {
    const { outage, lines } = build();
    for (const code of [KeyVaultErrorCode.FORBIDDEN, KeyVaultErrorCode.INVALID_REQUEST, KeyVaultErrorCode.OUTCOME_UNKNOWN]) {
      await expect(outage.deferral(vaultError(code))).resolves.toBeUndefined();
    }
    await expect(outage.deferral(new Error('database gone'))).resolves.toBeUndefined();
    expect(lines).toEqual([]);
  });

  it('says the outage without the number when it cannot be counted now', async () => {
    const { outage, lines, counted } = build();
    counted.mockRejectedValueOnce(new Error('database gone'));
    await outage.deferral(vaultError(KeyVaultErrorCode.TIMEOUT));
    expect(lines).toEqual([expect.stringMatching(/^warn Key Vault is unreachable \(KeyVaultError\(TIMEOUT\)\): some deletes wait;/)]);
  });
});
