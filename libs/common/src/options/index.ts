export * from './resolve-options';
export * from './option-schemas';
