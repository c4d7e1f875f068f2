import type { FactoryProvider, Provider, Type } from '@nestjs/common';
import { describeMissingHostModule, type HostModuleRequirement } from '../options/host-modules';
import { Outbox } from '../outbox/outbox';
import { OutboxHandlerRegistry } from '../outbox/outbox-handler-registry';
import { TransactionRunner } from './transaction-runner';

/**
 * What a lib takes from the host's `PersistenceModule`: the transaction runner, the outbox and the
 * outbox handler registry. A lib subclasses it as its own DI token, built by `provideHostPersistence`.
 */
export class HostPersistence {
  constructor(
    readonly runner: TransactionRunner,
    readonly outbox: Outbox,
    readonly handlers: OutboxHandlerRegistry,
  ) {}
}

/**
 * PersistenceModule as a `requireHostModules` requirement (@app/common), for a lib whose classes inject
 * its tokens directly. Global by itself: the host only has to register it.
 */
export const PERSISTENCE_HOST_MODULE: HostModuleRequirement = {
  module: 'PersistenceModule',
  entry: 'common',
  register: 'PersistenceModule.forRoot()',
  note: 'with OUTBOX_ENTITIES and OUTBOX_MIGRATIONS in TypeOrmModule.forRoot',
  tokens: [TransactionRunner, Outbox, OutboxHandlerRegistry],
};

const optional = (token: unknown) => ({ token: token as never, optional: true });

/**
 * The host module check: provides `provide` once the host's PersistenceModule is there, else fails
 * bootstrap with the lib's configuration error naming what to register, instead of Nest's "cannot
 * resolve dependencies" deep inside the lib. Libs never import PersistenceModule themselves: the
 * outbox needs one dispatcher per host, so `PersistenceModule.forRoot()` is the host's, once.
 */
export function provideHostPersistence<T extends HostPersistence>(
  provide: new (runner: TransactionRunner, outbox: Outbox, handlers: OutboxHandlerRegistry) => T,
  moduleName: string,
  configurationError: (message: string) => Error,
): FactoryProvider<T> {
  return {
    provide,
    useFactory: (runner?: TransactionRunner, outbox?: Outbox, handlers?: OutboxHandlerRegistry) => {
      if (!runner || !outbox || !handlers) {
        const missing = [!runner && 'TransactionRunner', !outbox && 'Outbox', !handlers && 'OutboxHandlerRegistry'].filter(Boolean);
        throw configurationError(describeMissingHostModule(moduleName, PERSISTENCE_HOST_MODULE, missing as string[]));
      }
      return new provide(runner, outbox, handlers);
    },
    inject: [optional(TransactionRunner), optional(Outbox), optional(OutboxHandlerRegistry)],
  };
}

/**
 * For a lib whose classes inject `TransactionRunner`, `Outbox` and `OutboxHandlerRegistry` directly:
 * its module provides them from its checked `HostPersistence`, so each goes through the check (Nest
 * builds providers concurrently: one injecting the host's token would fail first, with Nest's error).
 * The check itself (`provideHostPersistence`) must then sit in a module of its own, imported by the
 * lib's: in the lib's module its optional injections would find these providers, not the host's.
 */
export function hostPersistenceTokens(from: Type<HostPersistence>): Provider[] {
  return [
    { provide: TransactionRunner, useFactory: (p: HostPersistence) => p.runner, inject: [from] },
    { provide: Outbox, useFactory: (p: HostPersistence) => p.outbox, inject: [from] },
    { provide: OutboxHandlerRegistry, useFactory: (p: HostPersistence) => p.handlers, inject: [from] },
  ];
}
