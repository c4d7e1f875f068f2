import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, Optional } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';
import { OAuthRefreshConfigurationError } from './errors/oauth-refresh.errors';
import { OAUTH_REFRESH_RESOLVED_OPTIONS } from './oauth-refresh.constants';
import type { ResolvedOAuthRefreshOptions } from './oauth-refresh.options';
import { OAuthRefreshService } from './oauth-refresh.service';

/**
 * Decides only *when* the proactive refresh runs: registers the named cron job
 * (`proactive.jobName`, default `oauth-proactive-refresh`). The work, and the lock that keeps it to
 * one replica, are in `OAuthRefreshService.refreshExpiringTokens`.
 */
@Injectable()
export class OAuthRefreshScheduler implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(OAuthRefreshScheduler.name);

  constructor(
    private readonly service: OAuthRefreshService,
    @Inject(OAUTH_REFRESH_RESOLVED_OPTIONS) private readonly options: ResolvedOAuthRefreshOptions,
    @Optional() private readonly registry?: SchedulerRegistry,
  ) {}

  onApplicationBootstrap(): void {
    const { enabled, cronTime, jobName } = this.options.proactive;
    if (!enabled) return;
    if (!this.registry) {
      throw new OAuthRefreshConfigurationError(
        'The proactive OAuth refresh is enabled but SchedulerRegistry is missing: import ScheduleModule.forRoot() in the host, ' +
          'or set OAuthRefreshModule option proactive.enabled = false',
      );
    }
    const job = CronJob.from({
      name: jobName,
      cronTime,
      start: false,
      waitForCompletion: true,
      onTick: async () => {
        try {
          await this.service.refreshExpiringTokens();
        } catch (e) {
          this.logger.error(`proactive OAuth refresh failed: ${e instanceof Error ? e.message : String(e)}`);
        }
      },
    });
    this.registry.addCronJob(jobName, job);
    job.start();
    this.logger.log(`proactive OAuth refresh scheduled (${cronTime})`);
  }

  onModuleDestroy(): void {
    const { jobName } = this.options.proactive;
    if (this.registry?.doesExist('cron', jobName)) this.registry.deleteCronJob(jobName);
  }
}
