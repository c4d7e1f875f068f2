export * from './resolve-options';
export * from './option-schemas';
export * from './single-registration';
