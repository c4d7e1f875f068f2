import { Injectable, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Gauge } from 'prom-client';
import type { DataSource } from 'typeorm';
import { postgresPoolStats, type PostgresPoolStats } from '@app/common';
import { mirroredCounterBy, mirroredLabelledCounter, registerHostMetrics } from './host-metrics';

const PREFIX = 'credential_vault_database_pool_';

/**
 * The PostgreSQL pools of the host's DataSource on /metrics, read from the pools at scrape time (nothing is counted
 * per request): `pool="main"` (every query) and `pool="locks"` (advisory-lock sessions). The only labels are the
 * pool, a connection's state and why a connection was replaced. On SQLite there is no pool: the families are served without samples.
 */
@Injectable()
export class DatabasePoolMetrics implements OnModuleInit {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  onModuleInit(): void {
    const stats = () => postgresPoolStats(this.dataSource);
    registerHostMetrics([
      poolGauge('connections', 'PostgreSQL connections of each pool by state: busy (handed out, or being opened) or idle', ['state'], stats, (p) => [
        [{ state: 'busy' }, p.busy],
        [{ state: 'idle' }, p.idle],
      ]),
      poolGauge('max_connections', 'The most connections each PostgreSQL pool opens (DATABASE_POOL_SIZE; DATABASE_LOCK_SESSIONS)', [], stats, (p) => [[{}, p.max]]),
      poolGauge('waiting', 'Callers waiting for a connection of each PostgreSQL pool', [], stats, (p) => [[{}, p.waiting]]),
      // Every pool's series from 0 (an alert on increase() needs a sample before the first one).
      mirroredLabelledCounter(
        `${PREFIX}exhausted_total`,
        'Waits for a connection that ran out with every connection of the pool busy: 503 DATABASE_POOL_EXHAUSTED (pool="main") or LOCK_SESSIONS_EXHAUSTED (pool="locks")',
        'pool',
        () => Object.fromEntries(stats().flatMap((p) => (p.exhausted === undefined ? [] : [[p.pool, p.exhausted]]))),
      ),
      mirroredCounterBy(
        `${PREFIX}connections_replaced_total`,
        'PostgreSQL connections closed when taken, another one given, because they sat idle through a stall: reason="stall" (not heard from since a query met its deadline) or "idle_check" (idle 5 s or more, its SELECT 1 went unanswered)',
        ['pool', 'reason'],
        () => stats().flatMap((p) => Object.entries(p.replaced ?? {}).map(([reason, n]): [Record<string, string>, number] => [{ pool: p.pool, reason }, n])),
      ),
    ]);
  }
}

function poolGauge(
  name: string,
  help: string,
  labelNames: string[],
  stats: () => PostgresPoolStats[],
  samples: (p: PostgresPoolStats) => Array<[Record<string, string>, number]>,
): Gauge {
  return new Gauge({
    name: `${PREFIX}${name}`,
    help,
    labelNames: ['pool', ...labelNames],
    registers: [],
    collect() {
      this.reset();
      for (const p of stats()) for (const [labels, value] of samples(p)) this.set({ pool: p.pool, ...labels }, value);
    },
  });
}
