import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { DEFAULT_JOB_TIME_ZONE, LOCK_KEYS, ScheduledJobs } from '@app/common';
import { ROTATION_RESOLVED_OPTIONS } from '../rotation.constants';
import type { ResolvedRotationOptions } from '../rotation.options';
import { ExpiryMonitorService } from './expiry-monitor.service';
import { RotationCheckService } from './rotation-check.service';

/**
 * Decides only *when* the expiry-monitor and rotation-check jobs run (ScheduledJobs: named, cron from
 * options, switchable). The work and its lock (`LOCK_KEYS.rotationExpiryMonitor`, `LOCK_KEYS.rotationCheck`)
 * stay in the services' `runOnce()` (`lockedBy: 'work'`): they are public and must be exclusive whoever calls them.
 */
@Injectable()
export class RotationScheduler implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(RotationScheduler.name);

  constructor(
    private readonly jobs: ScheduledJobs,
    private readonly expiry: ExpiryMonitorService,
    private readonly check: RotationCheckService,
    @Inject(ROTATION_RESOLVED_OPTIONS) private readonly options: ResolvedRotationOptions,
  ) {}

  onApplicationBootstrap(): void {
    const { expiryMonitor: e, rotationCheck: c } = this.options;
    this.jobs.schedule({
      name: e.jobName,
      enabled: e.enabled,
      cron: e.cronTime,
      timeZone: e.timeZone,
      switchOption: 'RotationModule option expiryMonitor.enabled',
      lockKey: LOCK_KEYS.rotationExpiryMonitor,
      lockedBy: 'work',
      run: () => this.expiry.runOnce(),
    });
    this.jobs.schedule({
      name: c.jobName,
      enabled: c.enabled,
      cron: c.cronTime,
      timeZone: c.timeZone,
      switchOption: 'RotationModule option rotationCheck.enabled',
      lockKey: LOCK_KEYS.rotationCheck,
      lockedBy: 'work',
      run: () => this.check.runOnce(),
    });
    for (const j of [e, c]) if (j.enabled) this.logger.log(`${j.jobName} scheduled (${j.cronTime} ${j.timeZone ?? DEFAULT_JOB_TIME_ZONE})`);
  }

  onModuleDestroy(): void {
    this.jobs.unschedule(this.options.expiryMonitor.jobName);
    this.jobs.unschedule(this.options.rotationCheck.jobName);
  }
}
