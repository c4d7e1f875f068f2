import { SlidingWindowLimiter, ThrottleDecision } from './throttle';
import { OperationName } from './http/router';
import { keySizeOf } from './keys/crypto';
import { isRsa, KeyVersionRecord } from './keys/model';
import { ResolvedOptions } from './options';

/** Key operations that address no single key (lists, deleted keys, restore): they weigh 1, as a secret operation. */
const UNWEIGHTED_KEY_OPERATIONS: ReadonlySet<OperationName> = new Set([
  'listKeys',
  'listKeyVersions',
  'listDeletedKeys',
  'getDeletedKey',
  'recoverDeletedKey',
  'purgeDeletedKey',
  'restoreKey',
]);

/**
 * What one operation on a key costs of the vault's 4,000 "all other transactions" per 10 s, from Azure's
 * service limits: software RSA-2048 and EC keys 4,000 (1 each), RSA-3072 1,000 (4), RSA-4096 500 (8); an HSM key
 * half of its software kind (2, 8, 16). The thresholds are weighted and enforced on their sum.
 */
export function keyTransactionWeight(v: Pick<KeyVersionRecord, 'kty' | 'publicJwk'>): number {
  const bits = isRsa(v.kty) ? keySizeOf(v as KeyVersionRecord) : 0;
  const bySize = bits >= 4096 ? 8 : bits >= 3072 ? 4 : 1;
  return v.kty.endsWith('-HSM') ? 2 * bySize : bySize;
}

/** What a request asks of the budgets: which one, and how many transactions it counts. */
export interface ThrottleCharge {
  budget: 'createSecret' | 'createKey' | 'other';
  weight: number;
}

/**
 * The charge of a request: Set Secret on its own budget; Create Key on its own (an HSM key weighing 2: Azure's 20
 * software or 10 HSM creates); every other operation on the shared one, an operation on one key by that key's
 * weight (`keyOf` finds the addressed version; an unknown key weighs 1 — it answers 404 anyway).
 */
export function chargeOf(
  operation: OperationName | 'unknown',
  raw: Buffer,
  keyOf: () => Pick<KeyVersionRecord, 'kty' | 'publicJwk'> | undefined,
  isKeyOperation: boolean,
): ThrottleCharge {
  if (operation === 'setSecret') return { budget: 'createSecret', weight: 1 };
  if (operation === 'createKey') return { budget: 'createKey', weight: isHsmCreate(raw) ? 2 : 1 };
  if (!isKeyOperation || UNWEIGHTED_KEY_OPERATIONS.has(operation as OperationName)) return { budget: 'other', weight: 1 };
  const key = keyOf();
  return { budget: 'other', weight: key ? keyTransactionWeight(key) : 1 };
}

/** Whether a Create Key body asks for an HSM key (unreadable bodies count as software keys; they fail with 400 later). */
function isHsmCreate(raw: Buffer): boolean {
  try {
    const kty = (JSON.parse(raw.toString('utf8')) as { kty?: unknown } | null)?.kty;
    return typeof kty === 'string' && kty.endsWith('-HSM');
  } catch {
    return false;
  }
}

/** Azure's budgets for a vault: secret writes (Set Secret), key creates, and every other transaction (weighted). */
export class ThrottleBudgets {
  private constructor(private readonly limiters: Record<ThrottleCharge['budget'], SlidingWindowLimiter>) {}

  static of(t: ResolvedOptions['throttle']): ThrottleBudgets | undefined {
    if (!t) return undefined;
    return new ThrottleBudgets({
      other: new SlidingWindowLimiter(t.limit, t.windowMs),
      createSecret: new SlidingWindowLimiter(t.createSecretLimit, t.windowMs),
      createKey: new SlidingWindowLimiter(t.createKeyLimit, t.windowMs),
    });
  }

  /**
   * Admits a request on every given set of budgets (a vault's and its subscription's) or on none: a refused request
   * counts nowhere, as Azure documents; the Retry-After is the longest wait among them.
   */
  static take(charge: ThrottleCharge, budgets: ReadonlyArray<ThrottleBudgets | undefined>): ThrottleDecision {
    const limiters = budgets.filter((b) => b !== undefined).map((b) => b.limiters[charge.budget]);
    const waitMs = Math.max(0, ...limiters.map((l) => l.waitMs(charge.weight)));
    if (waitMs > 0) return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
    for (const l of limiters) l.admit(charge.weight);
    return { ok: true };
  }
}
