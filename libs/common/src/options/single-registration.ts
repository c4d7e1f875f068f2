import type { FactoryProvider, Type } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';

/**
 * Fails bootstrap, with the lib's configuration error, when the app registers the module more than once
 * (the lib READMEs each show the host's modules for context; copying two of them
 * did it): Nest then builds two instances, and which one each consumer gets depends on resolution order
 * — e.g. the first global KeyVaultModule wins and the other's vault URL is ignored.
 */
/** `moduleClass` is read when the app starts (the providers array is declared before the module's class). */
export function provideSingleRegistration(token: symbol, moduleClass: () => Type<unknown>, moduleName: string, configurationError: (message: string) => Error): FactoryProvider<true> {
  return {
    provide: token,
    useFactory: (modules: ModulesContainer): true => {
      const type = moduleClass();
      const count = [...modules.values()].filter((m) => m.metatype === type).length;
      if (count > 1) {
        throw configurationError(`${moduleName} is registered ${count} times in this application (each registration is an instance of its own; consumers get either): register it once, in the host module`);
      }
      return true;
    },
    inject: [ModulesContainer],
  };
}
