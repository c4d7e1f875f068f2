import { LIST_OPERATIONS } from './http/router';

/** A fault to inject into matching requests (see KeyVaultEmulator.injectFault). */
export interface FaultSpec {
  /**
   * `emptyPage` (list operations only): the page answers no items and a `nextLink` to the same place, as Azure
   * sometimes does — a client must follow nextLink until it is null, never stop at an empty or short page.
   */
  kind: 'status' | 'latency' | 'reset' | 'emptyPage';
  /** For kind 'status'. */
  status?: 429 | 500 | 503;
  /** Retry-After for 429/503 (default 1); `null` sends none (a 429 as Azure has been seen to answer it). */
  retryAfterSeconds?: number | null;
  /** For kind 'latency'. */
  latencyMs?: number;
  /**
   * For kind 'latency': `request` delays the request before the vault acts on it; `response` lets the
   * operation take effect and delays its answer (a lost answer to a write that happened). @default 'request'
   */
  phase?: 'request' | 'response';
  /** Probability 0..1 per matching request (default 1). */
  rate?: number;
  /** Only the next N matching requests. */
  count?: number;
  /** Only within this window from now. */
  durationMs?: number;
  /** Restrict to operation names (e.g. 'getSecret'); default all secret operations. */
  operations?: string[];
  /** Restrict to these object names (case-insensitive, as a denial's): one secret that keeps failing; default every name. */
  names?: string[];
}

/** `latencyMs` delays the request, `responseLatencyMs` (when set) the answer of the operation done. */
export type FaultDecision = (
  | { kind: 'none'; latencyMs: number }
  | { kind: 'status'; status: 429 | 500 | 503; retryAfterSeconds?: number | null; latencyMs: number }
  | { kind: 'reset'; latencyMs: number }
  | { kind: 'emptyPage'; latencyMs: number }
) & { responseLatencyMs?: number };

interface ActiveFault {
  spec: FaultSpec;
  remaining: number;
  expiresAt: number;
}

/** Validates a FaultSpec (from code or from the admin endpoint); throws a TypeError saying what to fix. */
export function validateFaultSpec(raw: unknown): FaultSpec {
  if (!raw || typeof raw !== 'object') throw new TypeError('A fault spec must be an object');
  const s = raw as Record<string, unknown>;
  if (s.kind !== 'status' && s.kind !== 'latency' && s.kind !== 'reset' && s.kind !== 'emptyPage') {
    throw new TypeError(`fault.kind must be 'status', 'latency', 'reset' or 'emptyPage' (got ${JSON.stringify(s.kind)})`);
  }
  if (s.kind === 'status' && s.status !== 429 && s.status !== 500 && s.status !== 503) {
    throw new TypeError(`fault.status must be 429, 500 or 503 for kind 'status' (got ${JSON.stringify(s.status)})`);
  }
  if (s.kind === 'latency' && (typeof s.latencyMs !== 'number' || !(s.latencyMs >= 0))) {
    throw new TypeError("fault.latencyMs (>= 0) is required for kind 'latency'");
  }
  if (s.phase !== undefined && (s.kind !== 'latency' || (s.phase !== 'request' && s.phase !== 'response'))) {
    throw new TypeError("fault.phase must be 'request' or 'response', for kind 'latency' only");
  }
  const num = (k: string, ok: (n: number) => boolean, what: string) => {
    if (s[k] === undefined) return;
    if (typeof s[k] !== 'number' || !ok(s[k] as number)) throw new TypeError(`fault.${k} must be ${what}`);
  };
  num('rate', (n) => n >= 0 && n <= 1, 'a number between 0 and 1');
  num('count', (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
  num('durationMs', (n) => n > 0, 'a positive number');
  if (s.retryAfterSeconds !== null) num('retryAfterSeconds', (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer or null (no header)');
  if (s.operations !== undefined && (!Array.isArray(s.operations) || s.operations.some((o) => typeof o !== 'string'))) {
    throw new TypeError('fault.operations must be an array of operation names');
  }
  if (s.names !== undefined && (!Array.isArray(s.names) || s.names.some((n) => typeof n !== 'string'))) throw new TypeError('fault.names must be an array of object names');
  if (s.kind === 'emptyPage' && (s.operations as string[] | undefined)?.some((o) => !(LIST_OPERATIONS as readonly string[]).includes(o))) {
    throw new TypeError(`fault.operations of kind 'emptyPage' must be list operations (${LIST_OPERATIONS.join(', ')})`);
  }
  return s as unknown as FaultSpec;
}

/**
 * Active faults, evaluated per request in the order they were injected: latencies add up, the
 * first matching 'status' or 'reset' fault decides the outcome.
 */
export class FaultInjector {
  private faults: ActiveFault[] = [];

  constructor(
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {}

  add(spec: FaultSpec): void {
    const valid = validateFaultSpec(spec);
    this.faults.push({
      spec: { ...valid, operations: valid.operations ? [...valid.operations] : undefined, names: valid.names?.map((n) => n.toLowerCase()) },
      remaining: valid.count ?? Number.POSITIVE_INFINITY,
      expiresAt: valid.durationMs !== undefined ? this.now() + valid.durationMs : Number.POSITIVE_INFINITY,
    });
  }

  clear(): void {
    this.faults = [];
  }

  get active(): number {
    this.prune();
    return this.faults.length;
  }

  /** The faults of a request of `operation`, on the object `name` when it names one. */
  decide(operation: string, name?: string): FaultDecision {
    this.prune();
    let latencyMs = 0;
    let responseLatencyMs = 0;
    let outcome: FaultDecision | undefined;
    for (const f of this.faults) {
      if (f.spec.operations && !f.spec.operations.includes(operation)) continue;
      if (f.spec.names && (name === undefined || !f.spec.names.includes(name.toLowerCase()))) continue;
      if (f.spec.kind === 'emptyPage' && !(LIST_OPERATIONS as readonly string[]).includes(operation)) continue;
      if (outcome && f.spec.kind !== 'latency') continue;
      f.remaining -= 1;
      if (this.random() >= (f.spec.rate ?? 1)) continue;
      if (f.spec.kind === 'latency' && f.spec.phase === 'response') responseLatencyMs += f.spec.latencyMs ?? 0;
      else if (f.spec.kind === 'latency') latencyMs += f.spec.latencyMs ?? 0;
      else if (f.spec.kind === 'reset') outcome = { kind: 'reset', latencyMs: 0 };
      else if (f.spec.kind === 'emptyPage') outcome = { kind: 'emptyPage', latencyMs: 0 };
      else outcome = { kind: 'status', status: f.spec.status!, retryAfterSeconds: f.spec.retryAfterSeconds, latencyMs: 0 };
    }
    this.prune();
    const decision: FaultDecision = outcome ? { ...outcome, latencyMs } : { kind: 'none', latencyMs };
    // Only an operation that runs has an answer to delay (a status or reset fault answers instead).
    if (responseLatencyMs > 0 && decision.kind === 'none') decision.responseLatencyMs = responseLatencyMs;
    return decision;
  }

  private prune(): void {
    const t = this.now();
    this.faults = this.faults.filter((f) => f.remaining > 0 && f.expiresAt > t);
  }
}
