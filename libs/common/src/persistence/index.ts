export * from './persistence.errors';
export * from './transaction-runner';
export * from './column-transformers';
export * from './persistence.options';
export * from './persistence.module';
export * from './plain-insert';
export { SqliteDurableCommit } from './sqlite-durable-commit';
export { SqliteWriteWorker } from './sqlite-write-worker';
export type { SqliteStatement } from './sqlite-write-worker';
