import type { Abstract, DynamicModule, FactoryProvider, Provider, Type } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';

/** A module of another lib that a lib module injects from: the host registers it, globally. */
export interface HostModuleRequirement {
  /** The module's class name, as the host writes it: `AuditModule`. */
  module: string;
  /** Its entry, `audit`: `@app/audit` in this repo, `@credential-vault/nest/audit` from the package. */
  entry: string;
  /** What the lib injects from it (the module's exports, or a host's own global provider of the same token). */
  tokens: ReadonlyArray<Type<unknown> | Abstract<unknown>>;
  /** How the host registers it, for the error. @default `X.forRoot({ ..., isGlobal: true }) or X.forRootAsync({ ..., isGlobal: true })` */
  register?: string;
  /** What else the host must do, appended to the error. */
  note?: string;
}

/** What `requireHostModules` returns. */
export interface HostModuleCheck {
  /** For the lib module's `providers`: each token, as an alias of the check's lookup. */
  providers: Provider[];
  /**
   * For the lib's ConfigurableModuleBuilder transform (`setExtras`): adds the check module to a
   * registration, importing the registration's own imports (`forRootAsync({ imports })`), which the
   * lib module sees as well.
   */
  into(definition: DynamicModule): DynamicModule;
}

/**
 * The host module check for the modules of other libs (AuditModule, KeyVaultModule, CredentialsModule):
 * a host that forgot one, or registered it without `isGlobal: true` (a lib module sees only its own
 * imports and global modules), failed bootstrap with Nest's "can't resolve dependencies of X (?, …)"
 * from deep inside the lib. Now it fails with the lib's configuration error naming the module, its
 * entry and how to register it.
 *
 * Nest builds a module's providers concurrently, so a check beside classes injecting the host's tokens
 * would race Nest's own error. Instead the lib module provides each token itself, as an alias
 * (`useExisting`: Nest runs no lifecycle hook of an alias, so the host's instance gets its hooks once)
 * of an optional lookup in a module of its own that imports what the registration imports
 * (`forRootAsync({ imports })`): it sees the global modules and those, as the lib module did. A missing
 * token is then `undefined`, never Nest's error, and the check there throws ours.
 */
export function requireHostModules(moduleName: string, requirements: ReadonlyArray<HostModuleRequirement>, configurationError: (message: string) => Error): HostModuleCheck {
  const refs = requirements.flatMap((requirement) => requirement.tokens.map((token) => ({ requirement, token, ref: Symbol(`${moduleName}:host:${token.name}`) })));
  const check: FactoryProvider<true> = {
    provide: Symbol(`${moduleName}:host-modules-checked`),
    useFactory: (modules: ModulesContainer, ...found: unknown[]): true => {
      const missing = refs.filter((_, i) => found[i] === undefined);
      if (missing.length === 0) return true;
      const problems = [...new Set(missing.map((m) => m.requirement))].map((r) => {
        const tokens = missing.filter((m) => m.requirement === r).map((m) => m.token);
        const local = nonGlobalProviders(modules, tokens);
        return describeMissingHostModule(moduleName, r, tokens) + (local.length > 0 ? `; ${local.join(', ')} exports it but is not global: only the module importing it sees it` : '');
      });
      throw configurationError(problems.join('; '));
    },
    inject: [ModulesContainer, ...refs.map((r) => r.ref)],
  };
  // A class of its own per lib module: Nest tells modules apart by class.
  const name = `${moduleName}HostModulesCheck`;
  const checkModule = { [name]: class {} }[name];
  // `useExisting` of an optional dependency: undefined when nothing the module sees provides the token.
  const lookups = refs.map(({ token, ref }) => ({ provide: ref, useExisting: { token, optional: true } }));
  return {
    providers: refs.map(({ token, ref }) => ({ provide: token, useExisting: ref })),
    into: (definition) => ({
      ...definition,
      imports: [...(definition.imports ?? []), { module: checkModule, imports: definition.imports ?? [], providers: [...lookups, check], exports: refs.map((r) => r.ref) }],
    }),
  };
}

/** The error's text for one host module: what to register, from which entry, what is missing. */
export function describeMissingHostModule(moduleName: string, r: HostModuleRequirement, missing: ReadonlyArray<{ name: string } | string>): string {
  const register = r.register ?? `${r.module}.forRoot({ ..., isGlobal: true }) or ${r.module}.forRootAsync({ ..., isGlobal: true })`;
  return (
    `${moduleName} needs ${register} (the ${r.entry} entry: @app/${r.entry} in this repo, @credential-vault/nest/${r.entry} from the package) in the host, once ` +
    `(missing: ${missing.map((t) => (typeof t === 'string' ? t : t.name)).join(', ')})` +
    (r.note ? `; ${r.note}` : '')
  );
}

/** The modules that export one of `tokens` but are not global (a lib module exports none of the tokens it checks). */
function nonGlobalProviders(modules: ModulesContainer, tokens: ReadonlyArray<Type<unknown> | Abstract<unknown>>): string[] {
  return [...modules.values()].filter((m) => !m.isGlobal && tokens.some((t) => m.exports.has(t))).map((m) => m.metatype.name);
}
