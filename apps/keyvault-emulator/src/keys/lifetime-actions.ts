import { KeyVaultHttpError } from '../errors';
import { VaultEvents } from '../events';
import { latestVersion } from '../objects/model';
import { generateKey, shapeOf } from './crypto';
import { addIsoDuration } from './durations';
import { DEFAULT_LIFETIME_ACTIONS, KeyRecord, KeyVersionRecord, RotationPolicyRecord } from './model';
import { KeyStore } from './store';

/** What one check did: the versions it created (Rotate) and the versions it notified about (Notify). */
export interface LifetimeActionsReport {
  rotated: Array<{ name: string; version: string }>;
  notified: Array<{ name: string; version: string }>;
}

type LifetimeAction = RotationPolicyRecord['lifetimeActions'][number];

/**
 * When an action of the policy falls due for the current version (ms), or undefined when it never does: `timeAfterCreate`
 * counts from the version's creation, `timeBeforeExpiry` back from its `exp` (a version without one is never due).
 */
export function dueAt(action: LifetimeAction, current: KeyVersionRecord): number | undefined {
  const { timeAfterCreate, timeBeforeExpiry } = action.trigger;
  if (timeAfterCreate) return addIsoDuration(current.created * 1000, timeAfterCreate);
  if (timeBeforeExpiry && current.exp !== undefined) return addIsoDuration(current.exp * 1000, timeBeforeExpiry, -1);
  return undefined;
}

/**
 * Applies the keys' rotation policies, as Key Vault does on its own: a due Rotate creates a new version exactly as a
 * rotate call does (`KeyStore.rotate`: same type, size or curve, key_ops, tags; exp from the policy's expiryTime); a due
 * Notify records one `Microsoft.KeyVault.KeyNearExpiry` event per version. Due is judged on the current version at
 * each check, so a new version is not due again until its own trigger: repeated checks never rotate twice.
 */
export class KeyLifetimeActions {
  constructor(
    private readonly store: KeyStore,
    private readonly events: VaultEvents,
    private readonly vaultUrl: string,
    private readonly now: () => number,
  ) {}

  async run(): Promise<LifetimeActionsReport> {
    const report: LifetimeActionsReport = { rotated: [], notified: [] };
    for (const record of this.store.listActive() as KeyRecord[]) {
      const actions = record.rotationPolicy?.lifetimeActions ?? DEFAULT_LIFETIME_ACTIONS;
      const isDue = (type: LifetimeAction['action']['type'], current: KeyVersionRecord) =>
        actions.some((a) => a.action.type === type && (dueAt(a, current) ?? Infinity) <= this.now());
      const current = latestVersion(record);
      if (isDue('Rotate', current)) {
        const rotated = await this.rotate(record.name, current);
        if (rotated) report.rotated.push({ name: record.name, version: rotated.version });
        continue;
      }
      if (record.nearExpiryNotified !== current.version && isDue('Notify', current)) {
        this.notify(record.name, current);
        report.notified.push({ name: record.name, version: current.version });
      }
    }
    return report;
  }

  /** A new version, unless the key changed (rotated, deleted) while its key pair was generated. */
  private async rotate(name: string, current: KeyVersionRecord): Promise<KeyVersionRecord | undefined> {
    const material = await generateKey(shapeOf(current));
    try {
      if (this.store.get(name).version !== current) return undefined;
      return this.store.rotate(name, current, material).version;
    } catch (err) {
      if (err instanceof KeyVaultHttpError) return undefined;
      throw err;
    }
  }

  private notify(name: string, current: KeyVersionRecord): void {
    this.store.markNearExpiryNotified(name, current.version);
    this.events.record({
      eventType: 'Microsoft.KeyVault.KeyNearExpiry',
      subject: name,
      eventTime: new Date(this.now()).toISOString(),
      data: {
        Id: `${this.vaultUrl}/keys/${name}/${current.version}`,
        VaultName: this.store.options.vaultName,
        ObjectType: 'Key',
        ObjectName: name,
        Version: current.version,
        NBF: current.nbf ?? null,
        EXP: current.exp ?? null,
      },
    });
  }
}
