import { metrics as otelMetrics, type Counter as OtelCounter, type Histogram as OtelHistogram } from '@opentelemetry/api';
import { Counter, Gauge, Histogram, Registry, register as globalRegister, type Metric } from 'prom-client';
import { KeyVaultErrorCode } from '../errors/key-vault-error-code';
import { KeyVaultError } from '../errors/key-vault.error';
import type { ResolvedKeyVaultOptions } from '../interfaces/key-vault-module-options.interface';

/** Value of the `<prefix>circuit_breaker_state` gauge. */
export enum BreakerStateValue {
  CLOSED = 0,
  HALF_OPEN = 1,
  OPEN = 2,
}

function getOrCreate<M extends Metric<string>>(
  registry: Registry,
  name: string,
  kind: abstract new (...args: any[]) => M,
  create: () => M,
): M {
  const existing = registry.getSingleMetric(name);
  if (existing === undefined) return create();
  if (existing instanceof kind) return existing;
  throw new KeyVaultError(
    KeyVaultErrorCode.CONFIGURATION,
    `Invalid KeyVaultModule options: metric "${name}" is already registered with another type; choose another metrics.prefix`,
    { operation: 'configuration' },
  );
}

/**
 * Prometheus metrics of the key-vault lib. Labels are the operation and the error code only — never
 * a secret name (names can identify tenants). Metrics are registered once per registry: several
 * modules (or test modules) sharing a registry share the same series.
 *
 * - `<prefix>operations_total{operation,outcome}` — outcome: `success`, the error severity
 *   (`transient`, `client`, `configuration`, `fatal`), `cancelled` (the caller left: not a vault failure),
 *   `not_found` (a read that asked whether the object exists, answered no: `KeyVaultReadOptions.notFoundExpected`), or
 *   `being_deleted` (a delete that met another delete of the name completing: `KeyVaultDeleteOptions.beingDeletedExpected`)
 * - `<prefix>cancelled_total{operation,stage}` — calls of callers who left: `not_sent` (dropped from the
 *   bulkhead queue or between retries: never reached the vault) or `in_flight` (a read aborted)
 * - `<prefix>operation_duration_seconds{operation}` — one logical call, retries and backoff included
 * - `<prefix>errors_total{code}` — code: the `KeyVaultErrorCode` name, e.g. `RATE_LIMITED` (failures only: neither
 *   a cancelled call nor an expected not-found or being-deleted)
 * - `<prefix>circuit_breaker_state` — 0 closed, 1 half-open, 2 open
 * - `<prefix>retries_total{operation}`
 */
/** What `operations_total` (and OpenTelemetry's `keyvault.operations`) counts: every outcome it has. */
const OPERATIONS_HELP =
  'Key Vault operations by outcome after retries: success; the error severity (transient, client, configuration, fatal); cancelled (the caller left); not_found (an existence check answered no); being_deleted (a delete met another delete of the name completing, which its caller takes as done)';

/** The outcomes a caller may declare expected answers rather than failures (`KeyVaultReadOptions`, `KeyVaultDeleteOptions`). */
export type ExpectedOutcome = 'not_found' | 'being_deleted';

export class KeyVaultMetrics {
  /** Where the metrics live (a private registry when `metrics.enabled` is false). */
  readonly registry: Registry;
  readonly operations: Counter<'operation' | 'outcome'>;
  readonly duration: Histogram<'operation'>;
  readonly errors: Counter<'code'>;
  readonly breakerState: Gauge;
  readonly retries: Counter<'operation'>;
  readonly cancelled: Counter<'operation' | 'stage'>;

  /**
   * The same figures under OpenTelemetry names (meter `credential-vault.key-vault`): `keyvault.operations`,
   * `keyvault.operation.duration` (s), `keyvault.errors` (by `error.type`), `keyvault.retries`,
   * `keyvault.circuit_breaker.state`. No-ops unless the host registered an OpenTelemetry MeterProvider
   * before the module was created.
   */
  private readonly otel: { operations: OtelCounter; duration: OtelHistogram; errors: OtelCounter; retries: OtelCounter; cancelled: OtelCounter };
  private otelBreakerState: BreakerStateValue = BreakerStateValue.CLOSED;

  constructor(options: ResolvedKeyVaultOptions['metrics']) {
    const meter = otelMetrics.getMeter('credential-vault.key-vault');
    this.otel = {
      operations: meter.createCounter('keyvault.operations', { description: OPERATIONS_HELP }),
      duration: meter.createHistogram('keyvault.operation.duration', { unit: 's', description: 'One Key Vault operation, retries and backoff included' }),
      errors: meter.createCounter('keyvault.errors', { description: 'Failed Key Vault operations by error type (stable code name)' }),
      retries: meter.createCounter('keyvault.retries', { description: 'Key Vault attempts retried after a transient failure' }),
      cancelled: meter.createCounter('keyvault.cancelled', { description: 'Key Vault calls of callers who left, by stage (not_sent, in_flight)' }),
    };
    meter
      .createObservableGauge('keyvault.circuit_breaker.state', { description: 'Circuit breaker: 0 closed, 1 half-open, 2 open' })
      .addCallback((result) => result.observe(this.otelBreakerState));
    this.registry = options.enabled ? (options.registry ?? globalRegister) : new Registry();
    const p = options.prefix;
    const registers = [this.registry];
    this.operations = getOrCreate(this.registry, `${p}operations_total`, Counter, () =>
      new Counter({
        name: `${p}operations_total`,
        help: OPERATIONS_HELP,
        labelNames: ['operation', 'outcome'] as const,
        registers,
      }),
    );
    this.duration = getOrCreate(this.registry, `${p}operation_duration_seconds`, Histogram, () =>
      new Histogram({
        name: `${p}operation_duration_seconds`,
        help: 'Duration of one Key Vault operation, retries and backoff included',
        labelNames: ['operation'] as const,
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
        registers,
      }),
    );
    this.errors = getOrCreate(this.registry, `${p}errors_total`, Counter, () =>
      new Counter({
        name: `${p}errors_total`,
        help: 'Key Vault operation failures by error code name',
        labelNames: ['code'] as const,
        registers,
      }),
    );
    this.breakerState = getOrCreate(this.registry, `${p}circuit_breaker_state`, Gauge, () =>
      new Gauge({
        name: `${p}circuit_breaker_state`,
        help: 'Key Vault circuit breaker state: 0 closed, 1 half-open, 2 open',
        registers,
      }),
    );
    this.retries = getOrCreate(this.registry, `${p}retries_total`, Counter, () =>
      new Counter({
        name: `${p}retries_total`,
        help: 'Key Vault attempts retried after a transient failure',
        labelNames: ['operation'] as const,
        registers,
      }),
    );
    this.cancelled = getOrCreate(this.registry, `${p}cancelled_total`, Counter, () =>
      new Counter({
        name: `${p}cancelled_total`,
        help: 'Key Vault calls of callers who left: not_sent (dropped before reaching the vault) or in_flight (a read aborted)',
        labelNames: ['operation', 'stage'] as const,
        registers,
      }),
    );
  }

  recordSuccess(operation: string, seconds: number): void {
    this.countOutcome(operation, seconds, 'success');
  }

  recordFailure(operation: string, seconds: number, error: KeyVaultError): void {
    if (error.code === KeyVaultErrorCode.CANCELLED) return this.recordCancelled(operation, seconds, error.sent === true);
    this.countOutcome(operation, seconds, error.severity);
    this.errors.inc({ code: error.codeName });
    this.otel.errors.add(1, { 'keyvault.operation': operation, 'error.type': error.codeName });
  }

  /**
   * An answer its caller expects, not a failure (`errors_total` is not touched): `not_found`, a read that asked whether
   * the object exists and learnt it does not; `being_deleted`, a delete that met another delete of the name completing.
   */
  recordExpected(operation: string, seconds: number, outcome: ExpectedOutcome): void {
    this.countOutcome(operation, seconds, outcome);
  }

  /** A call of a caller who left: outcome `cancelled`, never an error of the vault (`errors_total` is not touched). */
  private recordCancelled(operation: string, seconds: number, sent: boolean): void {
    const stage = sent ? 'in_flight' : 'not_sent';
    this.countOutcome(operation, seconds, 'cancelled');
    this.cancelled.inc({ operation, stage });
    this.otel.cancelled.add(1, { 'keyvault.operation': operation, stage });
  }

  /** One finished operation: its outcome in operations_total and its duration, in Prometheus and OpenTelemetry alike. */
  private countOutcome(operation: string, seconds: number, outcome: string): void {
    this.operations.inc({ operation, outcome });
    this.duration.observe({ operation }, seconds);
    this.otel.operations.add(1, { 'keyvault.operation': operation, outcome });
    this.otel.duration.record(seconds, { 'keyvault.operation': operation, outcome });
  }

  recordRetry(operation: string): void {
    this.retries.inc({ operation });
    this.otel.retries.add(1, { 'keyvault.operation': operation });
  }

  setBreakerState(state: BreakerStateValue): void {
    this.breakerState.set(state);
    this.otelBreakerState = state;
  }
}
