import { Injectable, OnModuleInit } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { JOB_OUTCOMES, ScheduledJobs, type ScheduledJobStatus } from '@app/common';
import { registerHostMetrics } from './host-metrics';

const PREFIX = 'credential_vault_job_';

/**
 * Publishes `ScheduledJobs.status()` on /metrics, read at scrape time: runs per outcome, the last
 * success, the last duration and whether a job is degraded. The only label is the job's name, as `scheduled_job` (`job` is the label Prometheus gives every scrape target).
 */
@Injectable()
export class JobMetrics implements OnModuleInit {
  constructor(private readonly jobs: ScheduledJobs) {}

  onModuleInit(): void {
    const status = () => this.jobs.status();
    const seen = new Map<string, number>();
    registerHostMetrics([
      new Counter({
        name: `${PREFIX}runs_total`,
        help: 'Runs of each scheduled job by outcome (skipped: another replica held its lock)',
        labelNames: ['scheduled_job', 'outcome'],
        registers: [],
        collect() {
          for (const j of status()) {
            for (const outcome of JOB_OUTCOMES) {
              const key = `${j.name}\u0000${outcome}`;
              const delta = j.runs[outcome] - (seen.get(key) ?? 0);
              // Every outcome shows from the start (at 0); a job scheduled again restarts at zero, so only increases count.
              this.inc({ scheduled_job: j.name, outcome }, Math.max(0, delta));
              seen.set(key, j.runs[outcome]);
            }
          }
        },
      }),
      jobGauge('last_success_timestamp_seconds', 'When each scheduled job last succeeded in this process (Unix seconds)', status, (j) =>
        j.lastSuccess ? j.lastSuccess.getTime() / 1000 : undefined,
      ),
      jobGauge('last_duration_seconds', 'Duration of the last run of each scheduled job', status, (j) =>
        j.lastDurationMs === null ? undefined : j.lastDurationMs / 1000,
      ),
      jobGauge('degraded', '1 when a scheduled job has not succeeded (or run elsewhere) for 3 intervals', status, (j) => (j.degraded ? 1 : 0)),
    ]);
  }
}

function jobGauge(name: string, help: string, status: () => ScheduledJobStatus[], read: (j: ScheduledJobStatus) => number | undefined): Gauge {
  return new Gauge({
    name: `${PREFIX}${name}`,
    help,
    labelNames: ['scheduled_job'],
    registers: [],
    collect() {
      this.reset();
      for (const j of status()) {
        const v = read(j);
        if (v !== undefined) this.set({ scheduled_job: j.name }, v);
      }
    },
  });
}
