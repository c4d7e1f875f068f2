import { Injectable } from '@nestjs/common';
import { metrics as otelMetrics, type Counter, type Histogram } from '@opentelemetry/api';

/** An operation of KeysService (the `keys.operation` attribute). */
export type KeysOperation =
  | 'create'
  | 'get'
  | 'list'
  | 'list_versions'
  | 'update'
  | 'rotate'
  | 'delete'
  | 'recover'
  | 'purge'
  | 'backup'
  | 'restore'
  | 'sign'
  | 'verify'
  | 'encrypt'
  | 'decrypt'
  | 'wrap'
  | 'unwrap';

export interface KeysOperationLabels {
  operation: KeysOperation;
  /** `success`, or the error's severity. */
  outcome: string;
  algorithm?: string;
  /** verify only: `local` or `vault`. */
  verifiedIn?: 'local' | 'vault';
}

/**
 * OpenTelemetry instruments of the keys lib (meter `credential-vault.keys`), through
 * `@opentelemetry/api` only — no-ops until the host registers a MeterProvider:
 * `keys.operations{keys.operation, outcome, keys.algorithm, keys.verified_in}` and
 * `keys.operation.duration` (s). Labels never carry a tenant, a key name or any key material.
 * The vault calls underneath are also counted by the key-vault lib (`keyvault.*`, `credential_vault_keyvault_*`).
 * `snapshot()` gives the same counts in process (tests, the bench).
 */
@Injectable()
export class KeysMetrics {
  private readonly operations: Counter;
  private readonly duration: Histogram;
  private readonly counts = new Map<string, number>();

  constructor() {
    const meter = otelMetrics.getMeter('credential-vault.keys');
    this.operations = meter.createCounter('keys.operations', { description: 'Key operations by outcome (success, or the error severity)' });
    this.duration = meter.createHistogram('keys.operation.duration', { unit: 's', description: 'One key operation, vault calls included' });
  }

  record(labels: KeysOperationLabels, seconds: number): void {
    const attributes: Record<string, string> = { 'keys.operation': labels.operation, outcome: labels.outcome };
    if (labels.algorithm) attributes['keys.algorithm'] = labels.algorithm;
    if (labels.verifiedIn) attributes['keys.verified_in'] = labels.verifiedIn;
    this.operations.add(1, attributes);
    this.duration.record(seconds, attributes);
    const key = [labels.operation, labels.outcome, labels.verifiedIn ?? ''].join('|');
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** Operations counted since start, by operation, outcome and (verify) where it ran. */
  snapshot(): Array<{ operation: KeysOperation; outcome: string; verifiedIn?: string; count: number }> {
    return [...this.counts].map(([key, count]) => {
      const [operation, outcome, verifiedIn] = key.split('|');
      return verifiedIn ? { operation: operation as KeysOperation, outcome, verifiedIn, count } : { operation: operation as KeysOperation, outcome, count };
    });
  }
}
