export * from './lock.errors';
export * from './keyed-mutex';
export * from './distributed-lock';
export * from './in-process-lock';
export * from './postgres-advisory-lock';
export * from './advisory-lock-key';
export * from './create-distributed-lock';
export * from './transaction-gate';
