export * from './jobs.errors';
export * from './scheduled-job.types';
export * from './scheduled-jobs';
export * from './scheduled-jobs.module';
