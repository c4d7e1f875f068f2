import { AuthOptions, validateAuthOptions } from './auth';
import type { EmulatorSubscription } from './subscription';

export interface KeyVaultEmulatorOptions {
  /** Interface to listen on. @default '127.0.0.1' */
  host?: string;
  /** Port; 0 picks a free ephemeral port. @default 0 */
  port?: number;
  /** Persistence + CA files. @default a fresh temp dir, removed on stop() */
  dataDir?: string;
  /** Tenant named in the 401 challenge. @default DEFAULT_TENANT_ID (a fixed GUID) */
  tenantId?: string;
  /** Soft-delete retention, 7..90 days. @default 90 */
  softDeleteRetentionDays?: number;
  /** Forbid purging soft-deleted secrets. @default false */
  purgeProtection?: boolean;
  /**
   * How long a delete or recover stays pending before it is visible, as in Azure where both complete
   * asynchronously (the SDK pollers wait for it; the name answers 409 meanwhile). Tests that want
   * speed set 0. @default DEFAULT_OPERATION_DELAY_MS (1000)
   */
  operationDelayMs?: number;
  /**
   * Per-vault throttling, as Azure states it per 10 s: at most `createSecretLimit` secret writes (Set Secret: a
   * new secret or a new version), `createKeyLimit` Create Key requests (an HSM key counts twice) and `limit` other
   * transactions (an operation on a key weighing by its type, see throttle-budgets) in any `windowMs` (sliding
   * windows), or false to disable.
   * @default { limit: 4000, windowMs: 10000, createSecretLimit: 300, createKeyLimit: 20 } (a `limit` given alone:
   * createSecretLimit min(300, limit), createKeyLimit min(20, limit))
   */
  throttle?: { limit: number; windowMs: number; createSecretLimit?: number; createKeyLimit?: number } | false;
  /**
   * The subscription this vault belongs to, shared with other vaults of the process: their requests together stay
   * within five times a vault's limits, as Azure's subscription-wide limit. @default none (this vault alone)
   */
  subscription?: EmulatorSubscription;
  /** Which bearer tokens are accepted. @default { mode: 'any' } */
  auth?: AuthOptions;
  /** Suppress the "not for production" banner (tests). @default false */
  quiet?: boolean;
  /**
   * The vault's time source in epoch ms (what `created`, expiry, soft-delete retention and rotation policies go by);
   * `advanceTime` moves the vault's clock forward from it. @default Date.now
   */
  now?: () => number;
  /**
   * How often the vault applies due rotation-policy actions on its own (auto-rotation, near-expiry notification), in
   * ms; 0: only when asked (`runLifetimeActions`, `advanceTime`, the admin API). @default DEFAULT_LIFETIME_ACTIONS_CHECK_MS (60000)
   */
  lifetimeActionsCheckMs?: number;
}

/** How often a vault applies due rotation-policy actions by itself (Azure states no latency; see the README). */
export const DEFAULT_LIFETIME_ACTIONS_CHECK_MS = 60_000;

export const DEFAULT_TENANT_ID = '00000000-0000-4000-8000-00000000e001';

/**
 * Azure takes seconds to finish a delete or recover; 1 s keeps that state observable (a poller's
 * first poll still sees it pending, so it can be stopped and resumed) while staying below the SDK's
 * default 2 s poll interval, so a default poller completes on its first re-poll.
 */
export const DEFAULT_OPERATION_DELAY_MS = 1000;

/** Azure Key Vault's per-vault limits per 10 s: 300 Set Secret, 20 Create Key (software; HSM 10), 4,000 other transactions. */
export const DEFAULT_THROTTLE = { limit: 4000, windowMs: 10_000, createSecretLimit: 300, createKeyLimit: 20 } as const;

export interface ResolvedOptions {
  host: string;
  port: number;
  dataDir?: string;
  tenantId: string;
  softDeleteRetentionDays: number;
  purgeProtection: boolean;
  operationDelayMs: number;
  throttle: { limit: number; windowMs: number; createSecretLimit: number; createKeyLimit: number } | false;
  subscription?: EmulatorSubscription;
  auth: AuthOptions;
  quiet: boolean;
  now?: () => number;
  lifetimeActionsCheckMs: number;
}

/** Merges defaults and validates once, with messages that say what to fix. */
export function resolveOptions(o: KeyVaultEmulatorOptions = {}): ResolvedOptions {
  const r: ResolvedOptions = {
    host: o.host ?? '127.0.0.1',
    port: o.port ?? 0,
    dataDir: o.dataDir,
    tenantId: o.tenantId ?? DEFAULT_TENANT_ID,
    softDeleteRetentionDays: o.softDeleteRetentionDays ?? 90,
    purgeProtection: o.purgeProtection ?? false,
    operationDelayMs: o.operationDelayMs ?? DEFAULT_OPERATION_DELAY_MS,
    // A given limit without createSecretLimit / createKeyLimit: Azure's 300 / 20, or the limit itself when it is lower.
    throttle:
      o.throttle === undefined
        ? { ...DEFAULT_THROTTLE }
        : o.throttle === false
          ? false
          : {
              ...o.throttle,
              createSecretLimit: o.throttle.createSecretLimit ?? Math.min(DEFAULT_THROTTLE.createSecretLimit, o.throttle.limit),
              createKeyLimit: o.throttle.createKeyLimit ?? Math.min(DEFAULT_THROTTLE.createKeyLimit, o.throttle.limit),
            },
    subscription: o.subscription,
    auth: o.auth ?? { mode: 'any' },
    quiet: o.quiet ?? false,
    now: o.now,
    lifetimeActionsCheckMs: o.lifetimeActionsCheckMs ?? DEFAULT_LIFETIME_ACTIONS_CHECK_MS,
  };
  const fail = (msg: string): never => {
    throw new TypeError(`KeyVaultEmulator: ${msg}`);
  };
  if (!Number.isInteger(r.port) || r.port < 0 || r.port > 65535) fail(`port must be an integer 0..65535 (got ${r.port})`);
  if (!Number.isInteger(r.softDeleteRetentionDays) || r.softDeleteRetentionDays < 7 || r.softDeleteRetentionDays > 90) {
    fail(`softDeleteRetentionDays must be an integer 7..90 like Azure (got ${r.softDeleteRetentionDays})`);
  }
  if (!Number.isFinite(r.operationDelayMs) || r.operationDelayMs < 0) fail(`operationDelayMs must be >= 0 (got ${r.operationDelayMs})`);
  if (r.now !== undefined && typeof r.now !== 'function') fail('now must be a function returning epoch milliseconds');
  if (!Number.isInteger(r.lifetimeActionsCheckMs) || r.lifetimeActionsCheckMs < 0) {
    fail(`lifetimeActionsCheckMs must be an integer >= 0 (0: only on demand; got ${r.lifetimeActionsCheckMs})`);
  }
  if (!/^[0-9a-zA-Z.-]+$/.test(r.tenantId)) fail(`tenantId must be a GUID or domain (got ${JSON.stringify(r.tenantId)})`);
  if (r.throttle !== false) {
    const { limit, windowMs, createSecretLimit, createKeyLimit } = r.throttle;
    if (!Number.isInteger(limit) || limit < 1) fail(`throttle.limit must be a positive integer (got ${limit})`);
    if (!Number.isInteger(createSecretLimit) || createSecretLimit < 1) fail(`throttle.createSecretLimit must be a positive integer (got ${createSecretLimit})`);
    if (!Number.isInteger(createKeyLimit) || createKeyLimit < 1) fail(`throttle.createKeyLimit must be a positive integer (got ${createKeyLimit})`);
    if (!Number.isFinite(windowMs) || windowMs < 1) fail(`throttle.windowMs must be a positive number (got ${windowMs})`);
  }
  if (r.subscription !== undefined && typeof (r.subscription as { budgets?: unknown }).budgets !== 'object') fail('subscription must be an EmulatorSubscription');
  try {
    validateAuthOptions(r.auth);
  } catch (err) {
    fail((err as Error).message);
  }
  return r;
}
