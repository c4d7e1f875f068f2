export * from './capture';
export * from './crash-child';
export * from './database';
export * from './oauth-server';
export * from './stack';
export * from './swc-require-hook';
export * from './wiring';
export * from './stall-proxy';
