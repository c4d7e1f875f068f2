export * from './errors';
export * from './context';
export * from './clock';
export * from './lock';
