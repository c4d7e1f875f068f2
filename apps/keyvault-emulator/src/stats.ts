export interface EmulatorStats {
  total: number;
  byOperation: Record<string, number>;
  byStatus: Record<string, number>;
  /** Keyed `${operation}:${status}`, e.g. `getSecret:200`. */
  byOperationAndStatus: Record<string, number>;
}

/** Counts vault requests by operation and status (admin endpoints are not counted). */
export class StatsCollector {
  private data: EmulatorStats = StatsCollector.empty();

  private static empty(): EmulatorStats {
    return { total: 0, byOperation: {}, byStatus: {}, byOperationAndStatus: {} };
  }

  record(operation: string, status: number | 'reset'): void {
    const d = this.data;
    d.total += 1;
    d.byOperation[operation] = (d.byOperation[operation] ?? 0) + 1;
    const s = String(status);
    d.byStatus[s] = (d.byStatus[s] ?? 0) + 1;
    const k = `${operation}:${s}`;
    d.byOperationAndStatus[k] = (d.byOperationAndStatus[k] ?? 0) + 1;
  }

  snapshot(): EmulatorStats {
    return structuredClone(this.data);
  }

  reset(): void {
    this.data = StatsCollector.empty();
  }
}
