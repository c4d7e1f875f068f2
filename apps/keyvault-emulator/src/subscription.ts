import { DEFAULT_THROTTLE, KeyVaultEmulatorOptions, resolveOptions } from './options';
import { ThrottleBudgets } from './throttle-budgets';

/** Azure's subscription-wide limit: five times a vault's, for every transaction type. */
export const SUBSCRIPTION_FACTOR = 5;

/**
 * A subscription several emulated vaults (one KeyVaultEmulator each, on its own port) belong to: Azure caps the
 * transactions of all the vaults of a subscription in a region at five times a vault's limits ("a subscription-wide
 * limit for all transaction types is five times per key vault limit"), so six busy vaults are throttled where one is
 * not. Pass the same instance as the `subscription` option of each vault.
 */
export class EmulatorSubscription {
  /** @internal the shared budgets every member vault takes from. */
  readonly budgets: ThrottleBudgets;

  /** `throttle`: the per-vault limits to multiply by five. @default Azure's (DEFAULT_THROTTLE) */
  constructor(throttle: Exclude<KeyVaultEmulatorOptions['throttle'], false | undefined> = DEFAULT_THROTTLE) {
    const t = resolveOptions({ throttle }).throttle;
    if (!t) throw new TypeError('EmulatorSubscription: throttle must be limits');
    this.budgets = ThrottleBudgets.of({
      windowMs: t.windowMs,
      limit: t.limit * SUBSCRIPTION_FACTOR,
      createSecretLimit: t.createSecretLimit * SUBSCRIPTION_FACTOR,
      createKeyLimit: t.createKeyLimit * SUBSCRIPTION_FACTOR,
    })!;
  }
}
