export * from './persistence.errors';
export * from './transaction-runner';
export * from './column-transformers';
export * from './persistence.options';
export * from './persistence.module';
export * from './plain-insert';
export { SqliteDurableCommit } from './sqlite-durable-commit';
export { SQLITE_WORKER_PREDECESSOR_FAILED, SqliteWriteWorker } from './sqlite-write-worker';
export type { SqliteStatement, SqliteWorkerTicket } from './sqlite-write-worker';
