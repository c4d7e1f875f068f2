import type { DynamicModule } from '@nestjs/common';

/** The async options of a module built by ConfigurableModuleBuilder, as far as this check reads them. */
interface AsyncOptionsSource {
  useFactory?: unknown;
  useClass?: unknown;
  useExisting?: unknown;
}

/**
 * Makes a lib's `forRootAsync` refuse, when it is called, async options that name no source of the options
 * (no `useFactory`, `useClass` or `useExisting`): TypeScript takes them (every field is optional), and Nest
 * would fail at bootstrap with "can't resolve dependencies of the X_MODULE_OPTIONS (?)", naming neither the module
 * nor what to pass. Call it once on the builder's `ConfigurableModuleClass`: the lib's module class inherits it,
 * an override of its own calling `super.forRootAsync` included.
 */
export function requireOptionsSource<T extends { forRootAsync(options: never): DynamicModule }>(moduleClass: T, moduleName: string, configurationError: (message: string) => Error): void {
  const generated = moduleClass.forRootAsync as (this: unknown, options: AsyncOptionsSource) => DynamicModule;
  Object.defineProperty(moduleClass, 'forRootAsync', {
    configurable: true,
    writable: true,
    value: function forRootAsync(this: unknown, options: AsyncOptionsSource): DynamicModule {
      if (!options?.useFactory && !options?.useClass && !options?.useExisting) {
        throw configurationError(
          `${moduleName}.forRootAsync needs useFactory, useClass or useExisting (what gives the options); got none (imports, inject and isGlobal go beside it)`,
        );
      }
      return generated.call(this, options);
    },
  });
}
