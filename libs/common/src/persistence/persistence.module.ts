import { DynamicModule, Global, Module, ModuleMetadata, Provider, Type } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { DataSource } from 'typeorm';
import { Clock } from '../clock';
import { DistributedLock } from '../lock/distributed-lock';
import { LockSessions } from '../lock/lock-sessions';
import { Outbox } from '../outbox/outbox';
import { OutboxDispatcher } from '../outbox/outbox-dispatcher';
import { OutboxHandlerRegistry } from '../outbox/outbox-handler-registry';
import { PersistenceModuleOptions, ResolvedPersistenceOptions, resolvePersistenceOptions } from './persistence.options';
import { TransactionRunner } from './transaction-runner';
import { provideEntityCheck } from './entity-check';
import { PersistenceConfigurationError } from './persistence.errors';
import { OUTBOX_ENTITIES } from '../outbox';
import { provideSingleRegistration } from '../options/single-registration';

/** The raw options given to `forRoot` / returned by `forRootAsync`'s factory. */
export const PERSISTENCE_MODULE_OPTIONS = Symbol('PERSISTENCE_MODULE_OPTIONS');
/** The validated options with defaults (`ResolvedPersistenceOptions`). */
export const PERSISTENCE_RESOLVED_OPTIONS = Symbol('PERSISTENCE_RESOLVED_OPTIONS');

/** For `PersistenceModule.forRootAsync({ useClass | useExisting })`: `create()` returns the options, as for every lib module. */
export interface PersistenceOptionsFactory {
  create(): PersistenceModuleOptions | Promise<PersistenceModuleOptions>;
}

/** One of `useFactory` (with `inject`), `useClass` or `useExisting`, as every lib module's `forRootAsync`. */
export interface PersistenceModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  inject?: any[];
  useFactory?: (...args: any[]) => PersistenceModuleOptions | Promise<PersistenceModuleOptions>;
  /** A class of the module's own, built by Nest, whose `create()` returns the options. */
  useClass?: Type<PersistenceOptionsFactory>;
  /** A provider the app already has (global, or from `imports`), whose `create()` returns the options. */
  useExisting?: Type<PersistenceOptionsFactory>;
}

const optional = (token: unknown) => ({ token: token as any, optional: true });
const LOCK_SESSIONS_SIZED = Symbol('LOCK_SESSIONS_SIZED');

const providers: Provider[] = [
  // Registered twice (each lib README shows it for context), two outbox dispatchers ran with different options.
  provideSingleRegistration(Symbol('PERSISTENCE_REGISTERED_ONCE'), () => PersistenceModule, 'PersistenceModule', (m) => new PersistenceConfigurationError([m], 'PersistenceModule cannot start'), { alwaysGlobal: true }),
  {
    // Validated once, here: bad options fail bootstrap with one error listing every problem.
    provide: PERSISTENCE_RESOLVED_OPTIONS,
    useFactory: (options: PersistenceModuleOptions) => resolvePersistenceOptions(options),
    inject: [PERSISTENCE_MODULE_OPTIONS],
  },
  provideEntityCheck(Symbol('OUTBOX_SCHEMA_CHECKED'), 'PersistenceModule', OUTBOX_ENTITIES, { entities: 'OUTBOX_ENTITIES', migrations: 'OUTBOX_MIGRATIONS' }, (m) => new PersistenceConfigurationError([m], 'PersistenceModule cannot start')),
  {
    // Sized (and their heartbeat set) at start, before any lock is taken (the locks libs build take their sessions later).
    provide: LOCK_SESSIONS_SIZED,
    useFactory: (ds: DataSource, options: ResolvedPersistenceOptions) => {
      if (ds.options.type !== 'postgres') return true;
      try {
        const { maxSessions, heartbeatMs, heartbeatTimeoutMs } = options.locks;
        LockSessions.configure(ds, { maxSessions, heartbeat: { intervalMs: heartbeatMs, timeoutMs: heartbeatTimeoutMs } });
      } catch (e) {
        throw new PersistenceConfigurationError([`locks.maxSessions: ${(e as Error).message}`], 'PersistenceModule cannot start');
      }
      return true;
    },
    inject: [DataSource, PERSISTENCE_RESOLVED_OPTIONS],
  },
  { provide: TransactionRunner, useFactory: (ds: DataSource) => new TransactionRunner(ds), inject: [DataSource] },
  OutboxHandlerRegistry,
  {
    provide: OutboxDispatcher,
    useFactory: (
      runner: TransactionRunner,
      registry: OutboxHandlerRegistry,
      options: ResolvedPersistenceOptions,
      lock?: DistributedLock,
      clock?: Clock,
      events?: EventEmitter2,
    ) => new OutboxDispatcher({ runner, registry, options: options.outbox, lock, clock, events }),
    inject: [TransactionRunner, OutboxHandlerRegistry, PERSISTENCE_RESOLVED_OPTIONS, optional(DistributedLock), optional(Clock), optional(EventEmitter2)],
  },
  {
    provide: Outbox,
    useFactory: (runner: TransactionRunner, options: ResolvedPersistenceOptions, dispatcher: OutboxDispatcher, clock?: Clock) =>
      new Outbox(runner, clock, options.outbox.dispatch ? dispatcher : undefined, options.outbox.maxPayloadBytes),
    inject: [TransactionRunner, PERSISTENCE_RESOLVED_OPTIONS, OutboxDispatcher, optional(Clock)],
  },
];

const exported = [TransactionRunner, Outbox, OutboxHandlerRegistry, OutboxDispatcher, PERSISTENCE_RESOLVED_OPTIONS];

/**
 * The transaction runner and the transactional outbox, once per host (global). Needs from the host:
 * TypeORM's `DataSource` with `OUTBOX_ENTITIES` / `OUTBOX_MIGRATIONS` registered; optionally
 * `DistributedLock` (else one is made for the DataSource), `Clock` and `EventEmitterModule`.
 *
 * ```ts
 * PersistenceModule.forRoot({ outbox: { pollIntervalMs: 5000 } })
 * ```
 */
@Global()
@Module({})
export class PersistenceModule {
  static forRoot(options: PersistenceModuleOptions = {}): DynamicModule {
    return {
      module: PersistenceModule,
      providers: [{ provide: PERSISTENCE_MODULE_OPTIONS, useValue: options }, ...providers],
      exports: exported,
    };
  }

  static forRootAsync(options: PersistenceModuleAsyncOptions): DynamicModule {
    const factory = options.useExisting ?? options.useClass;
    let optionsProvider: Provider;
    if (options.useFactory) optionsProvider = { provide: PERSISTENCE_MODULE_OPTIONS, useFactory: options.useFactory, inject: options.inject ?? [] };
    else if (factory) optionsProvider = { provide: PERSISTENCE_MODULE_OPTIONS, useFactory: (f: PersistenceOptionsFactory) => optionsFrom(f, factory), inject: [factory] };
    else throw new PersistenceConfigurationError(['forRootAsync needs useFactory, useClass or useExisting'], 'PersistenceModule cannot start');
    return {
      module: PersistenceModule,
      imports: options.imports ?? [],
      providers: [optionsProvider, ...(!options.useFactory && options.useClass ? [options.useClass] : []), ...providers],
      exports: exported,
    };
  }
}

/** A factory's options; one without create() (JavaScript, a cast, a createXOptions) is named, as by every lib module's forRootAsync. */
function optionsFrom(f: PersistenceOptionsFactory, factory: Type<PersistenceOptionsFactory>): ReturnType<PersistenceOptionsFactory['create']> {
  if (typeof f?.create !== 'function') {
    throw new PersistenceConfigurationError(
      [`forRootAsync: the options factory ${factory.name} (useClass / useExisting) has no create() method: implement PersistenceOptionsFactory`],
      'PersistenceModule cannot start',
    );
  }
  return f.create();
}
