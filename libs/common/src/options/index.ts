export * from './resolve-options';
