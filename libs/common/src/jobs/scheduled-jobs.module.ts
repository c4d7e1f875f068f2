import { Global, Module } from '@nestjs/common';
import { ScheduledJobs } from './scheduled-jobs';

/**
 * Provides the application's one `ScheduledJobs` (global). Every lib that schedules a job imports
 * it; Nest instantiates a static module once per application, so the host sees every lib's jobs.
 */
@Global()
@Module({ providers: [ScheduledJobs], exports: [ScheduledJobs] })
export class ScheduledJobsModule {}
