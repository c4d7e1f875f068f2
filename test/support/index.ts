export * from './capture';
export * from './database';
export * from './oauth-server';
export * from './stack';
