export * from './database';
export * from './oauth-server';
