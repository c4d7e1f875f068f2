import type { FactoryProvider, Type } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';

/**
 * Fails bootstrap, with the lib's configuration error, when the app registers the module more than once
 * (the lib READMEs each show the host's modules for context; copying two of them
 * did it): Nest then builds two instances, and which one each consumer gets depends on resolution order
 * — e.g. the first global KeyVaultModule wins and the other's vault URL is ignored.
 * The message names the modules that import it, and — for a module that is global only with `isGlobal` — that
 * the one registration needs it when several modules inject its services (moved to the host module without it,
 * their providers fail on Nest's "can't resolve dependencies", whose advice is to import it again).
 */
/** `moduleClass` is read when the app starts (the providers array is declared before the module's class). */
export function provideSingleRegistration(
  token: symbol,
  moduleClass: () => Type<unknown>,
  moduleName: string,
  configurationError: (message: string) => Error,
  { alwaysGlobal = false }: { alwaysGlobal?: boolean } = {},
): FactoryProvider<true> {
  return {
    provide: token,
    useFactory: (modules: ModulesContainer): true => {
      const type = moduleClass();
      const registrations = [...modules.values()].filter((m) => m.metatype === type);
      if (registrations.length > 1) {
        const importers = [...new Set(registrations.flatMap((r) => importersOf(modules, r)))];
        const by = importers.length > 0 ? `, by ${importers.slice(0, -1).join(', ')}${importers.length > 1 ? ' and ' : ''}${importers.at(-1)}` : '';
        const advice = alwaysGlobal ? '' : ' — with `isGlobal: true` when providers of other modules inject its services';
        throw configurationError(
          `${moduleName} is registered ${registrations.length} times in this application (each registration is an instance of its own; consumers get either)${by}: register it once, in the host module${advice}`,
        );
      }
      return true;
    },
    inject: [ModulesContainer],
  };
}

type NestModule = ModulesContainer extends Map<string, infer M> ? M : never;

/** Names of the modules whose imports hold this registration (the testing root included, as Nest names it). */
function importersOf(modules: ModulesContainer, registration: NestModule): string[] {
  return [...modules.values()].filter((m) => m.imports.has(registration)).map((m) => m.metatype.name);
}
