import { DynamicModule, Global, Injectable, Module, Provider } from '@nestjs/common';
import { EventEmitter2, EventEmitterModule } from '@nestjs/event-emitter';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { createTestDatabase, DATABASE_KINDS, TestDatabase } from '@app/testing';
import { Clock, ManualClock } from '../clock';
import { DistributedLock, InProcessLock } from '../lock';
import { Outbox, OUTBOX_ENTITIES, OUTBOX_MIGRATIONS, OutboxDispatcher, OutboxHandlerRegistry } from '../outbox';
import type { OutboxEvent } from '../outbox';
import { PersistenceConfigurationError } from './persistence.errors';
import { PERSISTENCE_RESOLVED_OPTIONS, PersistenceModule, type PersistenceOptionsFactory } from './persistence.module';
import type { ResolvedPersistenceOptions } from './persistence.options';
import { TransactionRunner } from './transaction-runner';

/** A service of "another lib": it only knows the runner and the outbox, never an EntityManager. */
@Injectable()
class RotatingService {
  constructor(
    private readonly runner: TransactionRunner,
    private readonly outbox: Outbox,
  ) {}

  rotate(credentialId: string): Promise<string> {
    return this.runner.run(() => this.outbox.add({ name: 'credential.rotated', tenantId: 't1', payload: { credentialId } }));
  }
}

@Module({ providers: [RotatingService], exports: [RotatingService] })
class RotatingModule {}

/** What a host's global core module provides (PersistenceModule only sees global providers of the host). */
@Global()
@Module({})
class HostCoreModule {
  static with(...providers: Provider[]): DynamicModule {
    return { module: HostCoreModule, providers, exports: providers.map((p) => (p as { provide: unknown }).provide as never) };
  }
}

describe.each(DATABASE_KINDS)('PersistenceModule on %s', (kind) => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
  });

  afterAll(async () => {
    await db?.drop();
  });

  const typeorm = () =>
    TypeOrmModule.forRoot({ ...db.options, entities: OUTBOX_ENTITIES, migrations: OUTBOX_MIGRATIONS, migrationsRun: true } as never);

  /**
   * The error a bootstrap fails with, on a DataSource of the test's own (destroyed after): one TypeOrmModule made
   * would outlive the failed compile, its pool open and its connection retried after the test's database is gone.
   */
  const bootstrapError = async (options: object, ...imports: Array<DynamicModule>): Promise<unknown> => {
    const ds = await new DataSource({ ...db.options, ...options } as never).initialize();
    try {
      return await Test.createTestingModule({ imports: [HostCoreModule.with({ provide: DataSource, useValue: ds }), ...imports] })
        .compile()
        .catch((e: unknown) => e);
    } finally {
      await ds.destroy();
    }
  };

  it('wires runner, outbox and dispatcher: an event added by another module reaches handlers and the bus after commit', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        typeorm(),
        EventEmitterModule.forRoot(),
        PersistenceModule.forRoot({ outbox: { pollIntervalMs: 0 } }),
        RotatingModule,
        HostCoreModule.with({ provide: Clock, useValue: new ManualClock() }),
      ],
    }).compile();
    const app = await moduleRef.init(); // onApplicationBootstrap starts the dispatcher
    try {
      const handled = new Promise<OutboxEvent>((resolve) => app.get(OutboxHandlerRegistry).register('credential.*', resolve));
      const emitted = new Promise<OutboxEvent>((resolve) => app.get(EventEmitter2).on('credential.rotated', resolve));
      const id = await app.get(RotatingService).rotate('c-42');
      const [viaHandler, viaBus] = await Promise.all([handled, emitted]);
      expect(viaHandler).toMatchObject({ id, name: 'credential.rotated', tenantId: 't1', payload: { credentialId: 'c-42' } });
      expect(viaBus.id).toBe(id);
      expect(app.get(TransactionRunner)).toBeInstanceOf(TransactionRunner);
      expect(app.get(OutboxDispatcher).lockKey).toMatch(/^cv-outbox-dispatcher/);
    } finally {
      await app.close(); // stops the dispatcher before TypeORM closes the DataSource
    }
  });

  it('uses the host DistributedLock and honours dispatch: false', async () => {
    const lock = new InProcessLock();
    const tryRun = jest.spyOn(lock, 'tryRun');
    const moduleRef = await Test.createTestingModule({
      imports: [
        typeorm(),
        HostCoreModule.with({ provide: DistributedLock, useValue: lock }),
        PersistenceModule.forRootAsync({ useFactory: () => ({ outbox: { dispatch: false } }) }),
      ],
    }).compile();
    const app = await moduleRef.init();
    try {
      const runner = app.get(TransactionRunner);
      await runner.run(() => app.get(Outbox).add({ name: 'x', payload: {} }));
      await new Promise((r) => setTimeout(r, 30));
      expect(tryRun).not.toHaveBeenCalled();
      await app.get(OutboxDispatcher).drain();
      expect(tryRun).toHaveBeenCalledTimes(1);
    } finally {
      await app.close();
    }
  });

  it("fails bootstrap naming OUTBOX_ENTITIES when the host's DataSource lacks the common lib's tables (not at the first write)", async () => {
    const err = await bootstrapError({ entities: [] }, PersistenceModule.forRoot({}));
    expect(err).toBeInstanceOf(PersistenceConfigurationError);
    expect((err as Error).message).toBe(
      "PersistenceModule cannot start — PersistenceModule's tables are not in the host's DataSource (missing: OutboxEventEntity, JobRunEntity, LockLeaseEntity): add OUTBOX_ENTITIES to its entities and OUTBOX_MIGRATIONS to its migrations",
    );
  });

  it('fails bootstrap naming OUTBOX_MIGRATIONS when the tables were never created (migrations not run), not at the first write', async () => {
    const fresh = await createTestDatabase(kind);
    try {
      const err = await bootstrapError({ ...fresh.options, entities: OUTBOX_ENTITIES }, PersistenceModule.forRoot({}));
      expect(err).toBeInstanceOf(PersistenceConfigurationError);
      expect((err as Error).message).toBe(
        "PersistenceModule cannot start — PersistenceModule's tables do not exist in the database (cv_outbox, cv_job_runs, cv_lock_leases): run OUTBOX_MIGRATIONS before the app starts (initializeWithMigrations does)",
      );
    } finally {
      await fresh.drop();
    }
  });

  it('fails bootstrap when PersistenceModule is registered twice (two outbox dispatchers, each lib getting either)', async () => {
    const err = await bootstrapError(
      { entities: OUTBOX_ENTITIES, migrations: OUTBOX_MIGRATIONS, migrationsRun: true },
      PersistenceModule.forRoot({ outbox: { dispatch: true } }),
      PersistenceModule.forRoot({ outbox: { dispatch: false } }),
    );
    expect(err).toBeInstanceOf(PersistenceConfigurationError);
    expect((err as Error).message).toMatch(/^PersistenceModule cannot start — PersistenceModule is registered 2 times in this application .*: register it once, in the host module$/);
  });

  it("forRootAsync with useClass or useExisting: the factory's create() gives the options, as for every lib module", async () => {
    class Options implements PersistenceOptionsFactory {
      create() {
        return { outbox: { dispatch: false, batchSize: 7 } };
      }
    }
    const batchSize = async (imports: DynamicModule[]) => {
      const app = await Test.createTestingModule({ imports: [typeorm(), ...imports] }).compile();
      try {
        return app.get<ResolvedPersistenceOptions>(PERSISTENCE_RESOLVED_OPTIONS).outbox.batchSize;
      } finally {
        await app.close();
      }
    };
    expect(await batchSize([PersistenceModule.forRootAsync({ useClass: Options })])).toBe(7);
    expect(await batchSize([HostCoreModule.with({ provide: Options, useClass: Options }), PersistenceModule.forRootAsync({ useExisting: Options })])).toBe(7);
    expect(() => PersistenceModule.forRootAsync({})).toThrow(PersistenceConfigurationError);
    // A method named another way (Nest's examples' createXOptions): named, as by every lib module, not "f.create is not a function".
    class Legacy {
      createPersistenceOptions() {
        return {};
      }
    }
    // On a DataSource of the test's own (bootstrapError): the failed compile leaves TypeOrmModule's open, its pool keeping
    // the jest worker alive (jest: "A worker process has failed to exit gracefully").
    const err = await bootstrapError({ entities: OUTBOX_ENTITIES, migrations: OUTBOX_MIGRATIONS, migrationsRun: true }, PersistenceModule.forRootAsync({ useClass: Legacy as never }));
    expect(err).toBeInstanceOf(PersistenceConfigurationError);
    expect((err as Error).message).toBe(
      'PersistenceModule cannot start — forRootAsync: the options factory Legacy (useClass / useExisting) has no create() method: implement PersistenceOptionsFactory',
    );
  });

  it('fails bootstrap with one configuration error on bad options', async () => {
    const err = await Test.createTestingModule({
      imports: [
        // Never connected: validation fails before anything would use it.
        HostCoreModule.with({ provide: DataSource, useValue: new DataSource({ ...db.options }) }),
        PersistenceModule.forRoot({ outbox: { batchSize: -1, retentionMs: -5 } }),
      ],
    })
      .compile()
      .catch((e) => e);
    expect(err).toBeInstanceOf(PersistenceConfigurationError);
    expect(err.problems).toHaveLength(2);
  });
});
