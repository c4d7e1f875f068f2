import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { KeyEncryptionKeyHealthCheck } from '@app/credentials';

/**
 * The envelope key-encryption key (`ENVELOPE_KEY_ENCRYPTION_KEY`) in readiness, when one is configured.
 * Degraded, never down: a key that cannot be used is the deployment's problem, the same on every replica;
 * leaving the balancer would turn failing envelope writes (and unwraps not cached yet) into a full outage,
 * while values in the vault store and data keys already unwrapped still serve.
 */
@Injectable()
export class KekHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly kek: KeyEncryptionKeyHealthCheck,
  ) {}

  /** Readiness asks only when a key-encryption key is configured. */
  get configured(): boolean {
    return this.kek.keyEncryptionKey !== undefined;
  }

  async isHealthy(key = 'envelopeKek') {
    const h = await this.kek.checkKeyEncryptionKey();
    const check = this.health.check(key);
    if (!h) return check.up({ configured: false });
    const details = { keyName: h.keyName, verdict: h.status, ...(h.version ? { version: h.version } : {}), checkedAt: h.checkedAt.toISOString() };
    if (h.status === 'usable') return check.up(details);
    return check.degraded({
      ...details,
      message:
        h.status === 'unusable'
          ? `the key-encryption key cannot be used (${h.problem}): new envelope data keys and unwraps not cached yet fail`
          : `the key-encryption key could not be checked (${h.problem})`,
    });
  }
}
