import { booleanOption, Clock, clockOptionSchema, describeProblems, MUST_BE_AN_OBJECT, resolveOptions } from '@app/common';
import { z } from 'zod';
import { KeysError, KeysErrorCode } from './errors/keys.errors';

export interface KeysModuleOptions {
  /** Prefix of every vault key name this lib creates: `^[a-z][a-z0-9]{0,15}$`. @default 'cv' */
  namePrefix?: string;
  /**
   * Where `verify` runs when the request does not say: `local` (from the cached public key: no vault
   * transaction; EC keys only with `verifyEcLocally`) or `remote` (the vault). @default 'local'
   */
  verify?: 'local' | 'remote';
  /**
   * Verify EC signatures (ES256/384/512) locally too, with a pure-JS ECDSA (node:crypto cannot verify
   * a precomputed digest): no vault transaction, but 10–20 ms of CPU on the event loop per verify.
   * Off: EC keys verify in the vault (as the Azure SDK does). @default false
   */
  verifyEcLocally?: boolean;
  /** Allow RSA1_5 (PKCS#1 v1.5) encryption and key wrapping. Legacy; refused by default. @default false */
  allowRsa1_5?: boolean;
  /**
   * How long a cached key (public key, enabled, expiry, key_ops, which version is latest) is trusted
   * before the vault is asked again. Local verification and the checks before each operation use it.
   * @default 60000
   */
  keyCacheTtlMs?: number;
  /** Key versions kept in the cache. @default 10000 */
  maxCachedKeys?: number;
  /** Page size of listKeys / listKeyVersions when the caller gives none (1..25). @default 25 */
  defaultPageSize?: number;
  /** Time source (tests pass a ManualClock). @default the host's `Clock`, else the system clock */
  clock?: Clock;
}

export interface ResolvedKeysOptions {
  namePrefix: string;
  verify: 'local' | 'remote';
  verifyEcLocally: boolean;
  allowRsa1_5: boolean;
  keyCacheTtlMs: number;
  maxCachedKeys: number;
  defaultPageSize: number;
  clock?: Clock;
}

const positiveInt = (message: string) => z.number({ error: message }).int(message).positive(message);

const schema = z.object({
  namePrefix: z
    .string({ error: 'must match ^[a-z][a-z0-9]{0,15}$' })
    .regex(/^[a-z][a-z0-9]{0,15}$/, 'must match ^[a-z][a-z0-9]{0,15}$')
    .default('cv'),
  verify: z.enum(['local', 'remote'], { error: "must be 'local' or 'remote'" }).default('local'),
  verifyEcLocally: booleanOption().default(false),
  allowRsa1_5: booleanOption().default(false),
  keyCacheTtlMs: positiveInt('must be a positive integer of milliseconds').default(60_000),
  maxCachedKeys: positiveInt('must be a positive integer').default(10_000),
  defaultPageSize: positiveInt('must be an integer in 1..25').max(25, 'must be an integer in 1..25').default(25),
  clock: clockOptionSchema().optional(),
}, MUST_BE_AN_OBJECT).strict();

/** Validates once; the error lists every problem, never a value. */
export function resolveKeysOptions(options: KeysModuleOptions = {}): ResolvedKeysOptions {
  return resolveOptions(
    schema,
    options,
    (problems) => new KeysError(KeysErrorCode.KEYS_CONFIGURATION, `Invalid KeysModule options:\n  - ${describeProblems(problems).join('\n  - ')}`),
  );
}
