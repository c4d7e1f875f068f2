import type { DynamicModule, Type } from '@nestjs/common';

/** The async options of a module built by ConfigurableModuleBuilder, as far as this check reads them. */
interface AsyncOptionsSource {
  useFactory?: unknown;
  useClass?: Type<unknown>;
  useExisting?: Type<unknown>;
  inject?: unknown[];
}

/**
 * Makes a lib's `forRootAsync` say what to fix where Nest's generated one fails obscurely. Async options that name
 * no source of the options (no `useFactory`, `useClass` or `useExisting`: TypeScript takes them, every field is
 * optional) throw when it is called — Nest failed at bootstrap with "can't resolve dependencies of the
 * X_MODULE_OPTIONS (?)". An options factory class without `create()` (JavaScript, a cast, a method named another
 * way) fails bootstrap naming it and the `<X>OptionsFactory` to implement — Nest's was "optionsFactory[...] is not a
 * function". Call it once on the builder's `ConfigurableModuleClass`: the lib's module class inherits it, an
 * override of its own calling `super.forRootAsync` included.
 */
export function requireOptionsSource<T extends { forRootAsync(options: never): DynamicModule }>(moduleClass: T, moduleName: string, configurationError: (message: string) => Error): void {
  const generated = moduleClass.forRootAsync as (this: unknown, options: AsyncOptionsSource) => DynamicModule;
  const factoryInterface = `${moduleName.replace(/Module$/, '')}OptionsFactory`;
  Object.defineProperty(moduleClass, 'forRootAsync', {
    configurable: true,
    writable: true,
    value: function forRootAsync(this: unknown, options: AsyncOptionsSource): DynamicModule {
      if (!options?.useFactory && !options?.useClass && !options?.useExisting) {
        throw configurationError(
          `${moduleName}.forRootAsync needs useFactory, useClass or useExisting (what gives the options); got none (imports, inject and isGlobal go beside it)`,
        );
      }
      if (options.useFactory) return generated.call(this, options);
      const { useClass, useExisting, ...rest } = options;
      const factory = (useExisting ?? useClass) as Type<unknown>;
      const create = (instance: { create?: () => unknown }): unknown => {
        if (typeof instance?.create !== 'function') {
          throw configurationError(
            `${moduleName}.forRootAsync: the options factory ${factory.name} (useClass / useExisting) has no create() method: implement ${factoryInterface}`,
          );
        }
        return instance.create();
      };
      const module = generated.call(this, { ...rest, useFactory: create, inject: [factory] });
      // Nest's useClass registers the class in the module; the factory above only injects it.
      return useExisting ? module : { ...module, providers: [...(module.providers ?? []), { provide: factory, useClass: factory }] };
    },
  });
}
