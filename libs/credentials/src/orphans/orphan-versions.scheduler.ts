import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { LOCK_KEYS, ScheduledJobs } from '@app/common';
import { CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import type { ResolvedCredentialsOptions } from '../credentials.options';
import { CredentialOrphanVersions, ORPHAN_VERSIONS_JOB } from './orphan-versions.service';

/**
 * Decides only *when* the orphan-versions job runs (ScheduledJobs: named, cron from options, switchable). The work and
 * its lock stay in `CredentialOrphanVersions.runOnce()` (`lockedBy: 'work'`): the CLI calls it too.
 */
@Injectable()
export class OrphanVersionsScheduler implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(OrphanVersionsScheduler.name);

  constructor(
    private readonly jobs: ScheduledJobs,
    private readonly orphans: CredentialOrphanVersions,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) private readonly options: ResolvedCredentialsOptions,
  ) {}

  onApplicationBootstrap(): void {
    const o = this.options.orphanVersions;
    if (o.enabled) this.orphans.lockOrThrow();
    this.jobs.schedule({
      name: ORPHAN_VERSIONS_JOB,
      enabled: o.enabled,
      cron: o.cron,
      timeZone: o.timeZone,
      switchOption: 'CredentialsModule option orphanVersions.enabled',
      lockKey: LOCK_KEYS.credentialOrphanVersions,
      lockedBy: 'work',
      run: () => this.orphans.runOnce(),
    });
    if (o.enabled) this.logger.log(`${ORPHAN_VERSIONS_JOB} scheduled (${o.cron} ${o.timeZone}, grace ${o.graceMs} ms, ${o.maxSecretsPerRun} secrets per run)`);
  }

  onModuleDestroy(): void {
    this.jobs.unschedule(ORPHAN_VERSIONS_JOB);
  }
}
