import type { CredentialVaultError } from '@app/common';

/**
 * The writes a job's run had refused by the vault for a permission (`isVaultRefusal`). A rotation mints or pushes
 * its new value before the vault write, and a refused write loses it: after `STOP_AFTER` refusals in a row the run
 * tries no more (the rest wait for the next run), so a vault-wide missing permission costs a run at most that many.
 * A rotation that succeeds in between resets the count: Azure RBAC can be scoped to single secrets, and one secret
 * denied on its own must not hold back every other tenant's rotations behind it.
 */
export class VaultRefusals {
  static readonly STOP_AFTER = 3;
  private inARow = 0;
  /** Refused writes of the run. */
  count = 0;
  /** The last one, for the run's log line (name and code only). */
  last?: CredentialVaultError;

  /** The run tries no further rotations. */
  get stopped(): boolean {
    return this.inARow >= VaultRefusals.STOP_AFTER;
  }

  refused(e: CredentialVaultError): void {
    this.inARow++;
    this.count++;
    this.last = e;
  }

  succeeded(): void {
    this.inARow = 0;
  }

  /**
   * The run's one error line (name and code only), or undefined when nothing was refused: `writes` and `rotations`
   * name what the job writes and rotates, `deferred` the rotations left for the next run once it stopped.
   */
  describe(job: string, writes: string, rotations: string, deferred: number): string | undefined {
    if (!this.last) return undefined;
    const rest = this.stopped ? `; ${deferred} more ${rotations} due are left for the next run` : '';
    return `${job}: the vault refused ${this.count} ${writes} (${this.last.codeName}: the host's identity lacks a permission)${rest}`;
  }
}
