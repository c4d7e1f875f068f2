import type { Logger } from '@nestjs/common';
import type { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';
import { AuditConfigurationError } from '../errors/audit.errors';

/**
 * Registers and starts the named cron job `name` (one run at a time; a failed run is logged, the
 * job stays scheduled). `option` names the AuditModule option that turns it off, for the error.
 */
export function startCronJob(
  registry: SchedulerRegistry | undefined,
  name: string,
  when: { cron: string; timeZone: string },
  option: string,
  logger: Logger,
  tick: () => Promise<unknown>,
): void {
  if (!registry) {
    throw new AuditConfigurationError(
      `The "${name}" job is enabled but SchedulerRegistry is missing: import ScheduleModule.forRoot() in the host, ` +
        `or set AuditModule option ${option} = false`,
    );
  }
  const job = CronJob.from({
    name,
    cronTime: when.cron,
    timeZone: when.timeZone,
    start: false,
    waitForCompletion: true,
    onTick: async () => {
      try {
        await tick();
      } catch (e) {
        logger.error(`The "${name}" job failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    },
  });
  registry.addCronJob(name, job);
  job.start();
}

/** Removes the job if it was registered. */
export function stopCronJob(registry: SchedulerRegistry | undefined, name: string): void {
  if (registry?.doesExist('cron', name)) registry.deleteCronJob(name);
}
