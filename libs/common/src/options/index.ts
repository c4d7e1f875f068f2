export * from './resolve-options';
export * from './option-schemas';
export * from './single-registration';
export { requireHostModules, type HostModuleCheck, type HostModuleRequirement } from './host-modules';
