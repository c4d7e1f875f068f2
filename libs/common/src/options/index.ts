export * from './resolve-options';
export * from './option-schemas';
export * from './single-registration';
export { requireOptionsSource } from './options-source';
export { requireHostModules, type HostModuleCheck, type HostModuleRequirement } from './host-modules';
