import { Global, Module } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { Clock, createDistributedLock, DistributedLock, ScheduledJobsModule, SystemClock } from '@app/common';

/**
 * Process-wide kernel services the libs inject: the clock (each lib's `clock` option, else this one),
 * the lock that makes every cron job and every OAuth refresh run once across replicas (PostgreSQL
 * advisory locks; in-process on SQLite), and `ScheduledJobs`, whose status /metrics and /health/ready show.
 */
@Global()
@Module({
  imports: [ScheduledJobsModule],
  providers: [
    { provide: Clock, useClass: SystemClock },
    { provide: DistributedLock, inject: [getDataSourceToken()], useFactory: (ds: DataSource) => createDistributedLock(ds) },
  ],
  exports: [Clock, DistributedLock],
})
export class CoreModule {}
