export * from './database';
export * from './oauth-server';
export * from './stack';
