import { CredentialValidationError } from '../errors/credential-errors';
import { valueHint } from '../masking';
import type { ValueStores } from '../stores/value-stores';
import type { ValidatedValue } from '../validation/credential-value.validator';
import { assertDate } from '../validation/identifiers';
import { storedCertificate } from './credential-view';
import type { CheckedStoreInput, StorePlan, VersionFacts } from './store-rows';

/* The earlier values of a `store` with `history` (a tenant restore): checked, then written before the one commit. */

/** Earlier values a `store` takes in `history` (Key Vault backs up at most 500 versions of a secret). */
const MAX_STORE_HISTORY = 500;

export interface HistoryValue {
  value: string;
  expiresAt: Date | null;
  hint: string | null;
  certificate: VersionFacts['certificate'];
}

/** Checked as `rotate` checks a value, before anything is written. */
export function checkHistory(input: CheckedStoreInput, validate: (value: string) => ValidatedValue): HistoryValue[] {
  if (input.history === undefined) return [];
  if (!Array.isArray(input.history) || input.history.length > MAX_STORE_HISTORY) {
    throw new CredentialValidationError(`history must be a list of at most ${MAX_STORE_HISTORY} earlier values`, 'history');
  }
  return input.history.map((h, i) => {
    if (h === null || typeof h !== 'object' || typeof h.value !== 'string') throw new CredentialValidationError(`history[${i}] must have a value`, 'history');
    if (h.expiresAt != null) assertDate(h.expiresAt, `history[${i}].expiresAt`);
    const validated = validate(h.value);
    return { value: h.value, expiresAt: validated.expiresAt ?? h.expiresAt ?? null, hint: valueHint(input.type, h.value), certificate: storedCertificate(validated.certificate) };
  });
}

/**
 * Writes the earlier values, oldest first, as versions 1..n of the plan's value store (nothing points at
 * them until the commit). Returns their version facts and where the current value goes next: the vault
 * store may have moved to a new secret name (generation) when one filled up.
 */
export async function writeHistory(stores: ValueStores, plan: StorePlan, history: HistoryValue[]): Promise<{ earlier: VersionFacts[]; generation: number; inGeneration: number }> {
  const earlier: VersionFacts[] = [];
  let generation = plan.generation;
  let inGeneration = 0;
  for (const h of history) {
    const version = earlier.length + 1;
    const written = await stores.of(plan.kind).write({ ...plan.valueWrite, version, value: h.value, expiresAt: h.expiresAt, vaultGeneration: generation, versionsInGeneration: inGeneration });
    if ((written.vaultGeneration ?? generation) !== generation) [generation, inGeneration] = [written.vaultGeneration!, 0];
    inGeneration++;
    earlier.push({ version, kind: plan.kind, pointer: written, hint: h.hint, expiresAt: h.expiresAt, certificate: h.certificate, sourceVersion: null });
  }
  return { earlier, generation, inGeneration };
}
