import { Logger } from '@nestjs/common';
import {
  CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  RetryPolicy,
  TimeoutPolicy,
  TimeoutStrategy,
  circuitBreaker,
  handleWhen,
  retry,
  timeout,
  type IBackoff,
  type IBackoffFactory,
  type IRetryBackoffContext,
} from 'cockatiel';
import type { Attributes } from '@opentelemetry/api';
import { inSpan, SpanKind } from '@app/common';
import { runInCallContext, type KeyVaultCallContext } from '../client/secret-client.factory';
import { callerLeftError } from '../errors/caller-left';
import { KeyVaultErrorCode } from '../errors/key-vault-error-code';
import { KeyVaultError, type KeyVaultOperation } from '../errors/key-vault.error';
import { isCockatielTimeout, mayHaveTakenEffect, toKeyVaultError } from '../errors/map-key-vault-error';
import type { ResolvedKeyVaultOptions } from '../interfaces/key-vault-module-options.interface';
import { BreakerStateValue, type ExpectedOutcome, type KeyVaultMetrics } from '../metrics/key-vault.metrics';
import { AbortableBulkhead, LeftQueueError } from './abortable-bulkhead';

export type BreakerStateName = 'closed' | 'half-open' | 'open' | 'isolated';

/** What one attempt gets: its abort signal (per-attempt timeout), its index (0 = first), the call context. */
export interface AttemptContext {
  signal: AbortSignal;
  attempt: number;
  call: KeyVaultCallContext;
}

/**
 * A name still being deleted or recovered (Azure completes a purge or a recover seconds after answering it) is retried
 * like a transient fault.
 */
const RETRYABLE = new Set([
  KeyVaultErrorCode.RATE_LIMITED,
  KeyVaultErrorCode.TIMEOUT,
  KeyVaultErrorCode.SERVICE_UNAVAILABLE,
  KeyVaultErrorCode.OBJECT_BEING_DELETED,
  KeyVaultErrorCode.OBJECT_BEING_RECOVERED,
]);
/**
 * Errors of a call whose caller declared them answers (`ExecuteOptions.notFoundExpected`, `beingDeletedExpected`): never
 * retried, whatever their code — a delete taking another delete's 409 as done has its answer, and waits for nothing.
 */
const CALLER_ANSWERS = new WeakSet<KeyVaultError>();

/** 429 is deliberately not a breaker failure: throttling is a quota, not an outage, and Retry-After governs it. */
const BREAKER_FAILURES = new Set([KeyVaultErrorCode.TIMEOUT, KeyVaultErrorCode.SERVICE_UNAVAILABLE]);

type ResilienceOptions = ResolvedKeyVaultOptions['resilience'];

export interface ExecuteOptions {
  /**
   * `false` for a write that must not happen twice (a Create or Rotate Key adds a version each time):
   * retried only after failures that prove it did not take effect (`mayHaveTakenEffect`: 429, 4xx, a
   * connection never made); the caller resolves any other failure by reading the object back.
   * @default true
   */
  idempotent?: boolean;
  /**
   * The caller's signal (it aborts when the caller has left). Once aborted, a call not yet sent — queued in
   * the bulkhead, or (reads) between retries — is dropped with CANCELLED (`sent: false`) and never sent.
   */
  signal?: AbortSignal;
  /**
   * `true` for a read: the caller's signal also aborts the request in flight (CANCELLED, `sent: true`) and the
   * call's retries. A write (`false`, the default) is never aborted once sent: it and its retries run to their
   * end, so the caller's write path (vault write, then metadata commit) always learns the outcome.
   * @default false
   */
  abortInFlight?: boolean;
  /** A not-found is an answer the caller expects (`KeyVaultReadOptions.notFoundExpected`): outcome `not_found`, no error. */
  notFoundExpected?: boolean;
  /** Another delete still completing is an answer the caller takes as done (`KeyVaultDeleteOptions.beingDeletedExpected`): outcome `being_deleted`, no error, no retry. */
  beingDeletedExpected?: boolean;
}

/** The outcome `error` is for a caller who expects it (`ExecuteOptions`), or undefined when it is a failure. */
function expectedOutcome(error: unknown, options: ExecuteOptions): ExpectedOutcome | undefined {
  if (!(error instanceof KeyVaultError)) return undefined;
  if (options.notFoundExpected && error.code === KeyVaultErrorCode.KEY_NOT_FOUND) return 'not_found';
  if (options.beingDeletedExpected && error.code === KeyVaultErrorCode.OBJECT_BEING_DELETED) return 'being_deleted';
  return undefined;
}

/**
 * Exponential backoff with "equal jitter" (half fixed, half random), never shorter than the
 * vault's `Retry-After` when the failure carried one.
 */
export class RetryAfterBackoff implements IBackoffFactory<IRetryBackoffContext<unknown>> {
  constructor(
    private readonly options: Pick<ResilienceOptions, 'initialDelayMs' | 'maxDelayMs'>,
    private readonly random: () => number = Math.random,
  ) {}

  next(context: IRetryBackoffContext<unknown>): IBackoff<IRetryBackoffContext<unknown>> {
    return { duration: this.delayFor(context), next: (c) => this.next(c) };
  }

  delayFor(context: Pick<IRetryBackoffContext<unknown>, 'attempt' | 'result'>): number {
    const exp = Math.min(this.options.maxDelayMs, this.options.initialDelayMs * 2 ** Math.max(0, context.attempt - 1));
    const jittered = exp / 2 + (this.random() * exp) / 2;
    const error = 'error' in context.result ? context.result.error : undefined;
    const retryAfterMs = error instanceof KeyVaultError ? error.retryAfterMs : undefined;
    if (retryAfterMs === undefined) return Math.round(jittered);
    // Never earlier than Retry-After; a little jitter on top so many callers do not return at once.
    const spread = this.random() * Math.min(this.options.initialDelayMs, retryAfterMs / 10);
    return Math.ceil(Math.max(retryAfterMs, jittered) + spread);
  }
}

/**
 * The resilience policy around every Key Vault call:
 * `bulkhead( retry( circuitBreaker( timeout( attempt ) ) ) )`.
 *
 * - bulkhead: at most `maxConcurrent` calls in flight (a call keeps its slot through its backoff),
 *   `maxQueued` waiting; beyond that BULKHEAD_FULL.
 * - retry: `maxAttempts` attempts in total, only for RATE_LIMITED, SERVICE_UNAVAILABLE (5xx, connection
 *   resets/refusals), TIMEOUT and a name in transition (OBJECT_BEING_DELETED / _RECOVERED); never for 4xx answers (400/401/403/404/409) nor CIRCUIT_OPEN,
 *   nor for an answer the caller declared expected (`beingDeletedExpected`'s 409: done, not waited out). A write that
 *   is not idempotent (`{ idempotent: false }`) is retried only when the failure proves it did not happen.
 *   Backoff: jittered exponential from `initialDelayMs` to `maxDelayMs`, at least `Retry-After`; a
 *   `Retry-After` above `maxDelayMs` ends the retries (the error carries `retryAfterMs`).
 * - circuit breaker: `consecutiveFailures` consecutive 5xx/timeout/connection failures open it; open =
 *   fail fast with CIRCUIT_OPEN (its `retryAfterMs`: what is left of the break); after `halfOpenAfterMs` one trial
 *   call goes through (half-open; the calls meanwhile wait for its outcome) and closes it on success.
 * - timeout: `timeoutMs` per attempt, aggressive (the attempt rejects at the deadline) and cooperative
 *   (its AbortSignal is passed to the SDK, which cancels the HTTP request).
 *
 * HTTP requests per call, at most: the SDK's own retry is off (`maxRetries: 0`), so each attempt is one
 * request, plus the 401 bearer-challenge round-trip when the client has no cached challenge (the first
 * request of a new client, or after the vault answers 401 with a new challenge), plus one more in the
 * rare CAE claims challenge. So a plain operation makes at most `maxAttempts` requests once the client
 * is warm, `maxAttempts + 1` on a cold client (default 4 / 5), and `3 × maxAttempts` in the worst
 * theoretical case. Delete and recover add their polling GETs (every `pollIntervalMs`) within each
 * attempt's `timeoutMs` — a delete two per poll: its deleted record, and whether the secret or key is live again (one version
 * listed); list-all makes one such call per page.
 */
export class KeyVaultResilience {
  private readonly logger = new Logger(KeyVaultResilience.name);
  private readonly bulkheadPolicy: AbortableBulkhead;
  private readonly retryPolicy: RetryPolicy;
  /** Same budget, for writes that are not idempotent. */
  private readonly retryUnappliedPolicy: RetryPolicy;
  private readonly breakerPolicy: CircuitBreakerPolicy;
  private readonly timeoutPolicy: TimeoutPolicy;

  /** `server.address` of the spans: the vault's host name. */
  private readonly vaultHost: string;

  constructor(
    readonly options: ResilienceOptions,
    private readonly metrics: KeyVaultMetrics,
    vaultUrl?: string,
  ) {
    this.vaultHost = vaultUrl ? new URL(vaultUrl).host : 'unknown';
    this.bulkheadPolicy = new AbortableBulkhead(options.bulkhead.maxConcurrent, options.bulkhead.maxQueued);
    this.retryPolicy = retry(
      handleWhen((e) => !isCallerAnswer(e) && KeyVaultResilience.isRetryable(e, options.maxDelayMs)),
      { maxAttempts: options.maxAttempts - 1, backoff: new RetryAfterBackoff(options) },
    );
    this.retryUnappliedPolicy = retry(
      handleWhen((e) => !isCallerAnswer(e) && KeyVaultResilience.isRetryable(e, options.maxDelayMs) && !mayHaveTakenEffect(e)),
      { maxAttempts: options.maxAttempts - 1, backoff: new RetryAfterBackoff(options) },
    );
    this.breakerPolicy = circuitBreaker(
      handleWhen((e) => isCockatielTimeout(e) || (e instanceof KeyVaultError && BREAKER_FAILURES.has(e.code))),
      { halfOpenAfter: options.breaker.halfOpenAfterMs, breaker: new ConsecutiveBreaker(options.breaker.consecutiveFailures) },
    );
    // abortOnReturn off: aborting a finished call's signal built a DOMException per vault call (~3% of a
    // migration's CPU); the SDK removes its abort listeners when a request settles, so nothing is left to cancel.
    this.timeoutPolicy = timeout(options.timeoutMs, { strategy: TimeoutStrategy.Aggressive, abortOnReturn: false });
    this.breakerPolicy.onStateChange((state) => {
      this.metrics.setBreakerState(KeyVaultResilience.gaugeValue(state));
      const name = KeyVaultResilience.stateName(state);
      if (state === CircuitState.Open) this.logger.warn(`Key Vault circuit breaker opened: calls fail fast for ${options.breaker.halfOpenAfterMs} ms`);
      else this.logger.log(`Key Vault circuit breaker ${name}`);
    });
    this.metrics.setBreakerState(BreakerStateValue.CLOSED);
  }

  static isRetryable(e: unknown, maxDelayMs: number): boolean {
    if (isCockatielTimeout(e)) return true;
    if (!(e instanceof KeyVaultError) || !RETRYABLE.has(e.code)) return false;
    return e.retryAfterMs === undefined || e.retryAfterMs <= maxDelayMs;
  }

  private static stateName(state: CircuitState): BreakerStateName {
    switch (state) {
      case CircuitState.Closed:
        return 'closed';
      case CircuitState.HalfOpen:
        return 'half-open';
      case CircuitState.Open:
        return 'open';
      default:
        return 'isolated';
    }
  }

  private static gaugeValue(state: CircuitState): BreakerStateValue {
    if (state === CircuitState.Closed) return BreakerStateValue.CLOSED;
    if (state === CircuitState.HalfOpen) return BreakerStateValue.HALF_OPEN;
    return BreakerStateValue.OPEN;
  }

  /**
   * Breaker state. Cockatiel moves open → half-open lazily, on the first call after `halfOpenAfterMs`;
   * this reports `half-open` as soon as that call would be let through.
   */
  get breakerState(): BreakerStateName {
    const state = this.breakerPolicy.state;
    if (state === CircuitState.Open && this.breakerOpenForMs() === 0) return 'half-open';
    return KeyVaultResilience.stateName(state);
  }

  /**
   * How long the open breaker still fails calls fast (ms): after that the next call is let through as its trial (0: now).
   * Undefined when it is not open (closed, a trial in flight — cockatiel holds the other calls until it ends —, or isolated).
   * CIRCUIT_OPEN errors carry it as `retryAfterMs`.
   */
  breakerOpenForMs(): number | undefined {
    if (this.breakerPolicy.state !== CircuitState.Open) return undefined;
    const openedAt = (this.breakerPolicy.toJSON() as { ownState?: { openedAt?: number } }).ownState?.openedAt;
    return openedAt === undefined ? undefined : Math.max(0, openedAt + this.options.breaker.halfOpenAfterMs - Date.now());
  }

  /** Runs one logical operation through bulkhead, retry, breaker and per-attempt timeout; records metrics. */
  async execute<T>(operation: KeyVaultOperation, secretName: string | undefined, fn: (ctx: AttemptContext) => Promise<T>, options: ExecuteOptions = {}): Promise<T> {
    // One client span per logical call (retries included); no secret name: names carry tenant ids.
    const notAnError = (e: unknown) => {
      const expected = expectedOutcome(e, options);
      return cancelledSpanAttributes(e) ?? (expected ? { [`keyvault.${expected}`]: true } : undefined);
    };
    const spanOptions = { kind: SpanKind.CLIENT, attributes: { 'keyvault.operation': operation, 'server.address': this.vaultHost }, notAnError };
    return inSpan(`keyvault ${operation}`, spanOptions, async (span) => {
      let attempts = 0;
      try {
        const retryPolicy = options.idempotent === false ? this.retryUnappliedPolicy : this.retryPolicy;
        return await this.executeWithPolicies(operation, secretName, retryPolicy, options, (ctx) => {
          attempts = ctx.attempt + 1;
          return fn(ctx);
        });
      } finally {
        span.setAttribute('keyvault.attempts', attempts);
      }
    });
  }

  private async executeWithPolicies<T>(
    operation: KeyVaultOperation,
    secretName: string | undefined,
    retryPolicy: RetryPolicy,
    options: ExecuteOptions,
    fn: (ctx: AttemptContext) => Promise<T>,
  ): Promise<T> {
    const { signal: caller, abortInFlight = false } = options;
    const errorCtx = { operation, secretName, timeoutMs: this.options.timeoutMs, breakerOpenForMs: () => this.breakerOpenForMs() };
    const started = performance.now();
    const cancelled = (sent: boolean, cause?: unknown) => callerLeftError(operation, sent ? 'in_flight' : 'not_sent', { secretName, cause });
    let attempt = 0;
    try {
      const result = await this.bulkheadPolicy.execute(() => {
        const run = retryPolicy.execute(() => {
          // Not sent yet: a write only before its first attempt (after that, its retries finish what it began).
          // Checked outside the breaker, which would count a half-open trial that never ran as a success.
          if (caller?.aborted && (attempt === 0 || abortInFlight)) throw cancelled(false);
          return this.breakerPolicy.execute(() =>
            this.timeoutPolicy.execute(async (_ctx, attemptSignal) => {
              const n = attempt++;
              if (n > 0) this.metrics.recordRetry(operation);
              // A read's request is cancelled by either signal (CANCELLED: neither retried nor a breaker failure); a
              // half-open trial is not, as cockatiel would close the breaker on its cancellation. (cockatiel runs the
              // trial before it records the half-open state: any state but closed here means this is the trial.)
              const linked = caller !== undefined && abortInFlight && this.breakerPolicy.state === CircuitState.Closed;
              const signal = linked ? AbortSignal.any([attemptSignal, caller]) : attemptSignal;
              const call: KeyVaultCallContext = { signal };
              try {
                return await runInCallContext(call, () => fn({ signal, attempt: n, call }));
              } catch (e) {
                if (linked && caller.aborted && !attemptSignal.aborted) throw cancelled(true, e);
                const error = toKeyVaultError(e, errorCtx);
                if (expectedOutcome(error, options)) CALLER_ANSWERS.add(error);
                throw error;
              }
            }),
          );
        });
        // A read gives its slot back as soon as its caller leaves, backoff included (the attempt that follows drops itself).
        return caller && abortInFlight ? untilAborted(run, caller, () => cancelled(attempt > 0)) : run;
      }, caller);
      this.metrics.recordSuccess(operation, (performance.now() - started) / 1000);
      return result;
    } catch (e) {
      const error = e instanceof LeftQueueError ? cancelled(false, e) : toKeyVaultError(e, errorCtx);
      const seconds = (performance.now() - started) / 1000;
      const expected = expectedOutcome(error, options);
      if (expected) this.metrics.recordExpected(operation, seconds, expected);
      else this.metrics.recordFailure(operation, seconds, error);
      throw error;
    }
  }

  /**
   * One attempt through the circuit breaker with its own timeout — no retry, no bulkhead — for health
   * probes that must answer fast. A probe is a breaker trial like any call: it fails fast while the
   * breaker is open and, once half-open, its success closes the breaker.
   */
  async probe<T>(timeoutMs: number, fn: (ctx: AttemptContext) => Promise<T>): Promise<T> {
    const errorCtx = { operation: 'healthCheck' as const, timeoutMs, breakerOpenForMs: () => this.breakerOpenForMs() };
    const probeTimeout = timeout(timeoutMs, TimeoutStrategy.Aggressive);
    try {
      return await this.breakerPolicy.execute(() =>
        probeTimeout.execute(async (_ctx, signal) => {
          const call: KeyVaultCallContext = { signal };
          try {
            return await runInCallContext(call, () => fn({ signal, attempt: 0, call }));
          } catch (e) {
            throw toKeyVaultError(e, errorCtx);
          }
        }),
      );
    } catch (e) {
      throw toKeyVaultError(e, errorCtx);
    }
  }
}

function isCallerAnswer(e: unknown): boolean {
  return e instanceof KeyVaultError && CALLER_ANSWERS.has(e);
}

/** A caller who left is no failure of the vault: the span says so as the metrics do (`cancelled_total{stage}`), not ERROR. */
function cancelledSpanAttributes(e: unknown): Attributes | undefined {
  return e instanceof KeyVaultError && e.code === KeyVaultErrorCode.CANCELLED ? { 'keyvault.cancelled': e.sent === true ? 'in_flight' : 'not_sent' } : undefined;
}

/** `work`, or `gone()` as soon as `signal` aborts (`work` then settles unobserved). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal, gone: () => Error): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(gone());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(gone());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
