export * from './errors';
export * from './error-code-ranges';
export * from './context';
export * from './clock';
export * from './lock';
export * from './persistence';
export * from './outbox';
