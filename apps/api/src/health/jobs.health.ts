import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { ScheduledJobs } from '@app/common';

/**
 * Readiness notes scheduled jobs that have not succeeded (or run on another replica) for 3 of
 * their intervals. Degraded, never down: a stuck retention job is no reason to stop serving reads.
 */
@Injectable()
export class JobsHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly jobs: ScheduledJobs,
  ) {}

  isHealthy(key = 'jobs') {
    const check = this.health.check(key);
    const status = this.jobs.status();
    const degraded = status.filter((j) => j.degraded);
    const details = {
      scheduled: status.map((j) => j.name),
      ...(degraded.length ? { degraded: degraded.map((j) => ({ job: j.name, lastSuccess: j.lastSuccess, lastError: j.lastError })) } : {}),
    };
    return degraded.length ? check.degraded({ ...details, message: 'a scheduled job has not succeeded for 3 intervals' }) : check.up(details);
  }
}
