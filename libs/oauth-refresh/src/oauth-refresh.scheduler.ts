import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { DEFAULT_JOB_TIME_ZONE, LOCK_KEYS, ScheduledJobs } from '@app/common';
import { OAUTH_REFRESH_RESOLVED_OPTIONS } from './oauth-refresh.constants';
import type { ResolvedOAuthRefreshOptions } from './oauth-refresh.options';
import { OAuthRefreshService } from './oauth-refresh.service';

/**
 * Decides only *when* the proactive refresh runs: schedules the job `proactive.jobName` (default
 * `oauth-proactive-refresh`) with `ScheduledJobs`. The work, and the lock `LOCK_KEYS.oauthProactiveRefresh`
 * that keeps it to one replica, stay in `OAuthRefreshService.refreshExpiringTokens` (`lockedBy: 'work'`):
 * it is public, and must be exclusive whoever calls it.
 */
@Injectable()
export class OAuthRefreshScheduler implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(OAuthRefreshScheduler.name);

  constructor(
    private readonly jobs: ScheduledJobs,
    private readonly service: OAuthRefreshService,
    @Inject(OAUTH_REFRESH_RESOLVED_OPTIONS) private readonly options: ResolvedOAuthRefreshOptions,
  ) {}

  onApplicationBootstrap(): void {
    const { enabled, cronTime, timeZone, jobName } = this.options.proactive;
    this.jobs.schedule({
      name: jobName,
      enabled,
      cron: cronTime,
      timeZone,
      switchOption: 'OAuthRefreshModule option proactive.enabled',
      lockKey: LOCK_KEYS.oauthProactiveRefresh,
      lockedBy: 'work',
      run: () => this.service.refreshExpiringTokens(),
    });
    // Worded as the other jobs' lines: the job's name, its cron and the zone it runs in (ScheduledJobs' default when unset).
    if (enabled) this.logger.log(`${jobName} scheduled (${cronTime} ${timeZone ?? DEFAULT_JOB_TIME_ZONE})`);
  }

  onModuleDestroy(): void {
    this.jobs.unschedule(this.options.proactive.jobName);
  }
}
