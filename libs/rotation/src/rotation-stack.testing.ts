/** The test stack of the rotation core's integration specs (not part of the lib's public API). */
import { Logger } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { Test, type TestingModule } from '@nestjs/testing';
import { ManualClock, OutboxEventEntity, prefixedLockKey, type OperationContext } from '@app/common';
import { CredentialsService, CredentialType, ValueStoreKind, type CredentialsModuleOptions } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, credentialsStackImports, endLockSessionOfKey, type TestDatabase, type TestDatabaseKind } from '@app/testing';
import { DataSource } from 'typeorm';
import { ExpiryMonitorService, RevocationService, RotationCheckService, RotationModule, RotationPolicyService, RotationService, type PendingRotation, type RotationModuleOptions } from './index';

export const DAY = 86_400_000;

export interface RotationStack {
  moduleRef: TestingModule;
  credentials: CredentialsService;
  policies: RotationPolicyService;
  rotation: RotationService;
  revocation: RevocationService;
  expiry: ExpiryMonitorService;
  check: RotationCheckService;
  dataSource: DataSource;
}

/** One "replica": its own Nest app, cache, lock and pool on a shared database. */
export async function buildRotationStack(
  db: TestDatabase,
  emu: KeyVaultEmulator,
  clock: ManualClock,
  options: RotationModuleOptions = {},
  style: 'forRoot' | 'forRootAsync' = 'forRoot',
  credentials: Omit<CredentialsModuleOptions, 'clock'> = {},
): Promise<RotationStack> {
  const jobs = { expiryMonitor: { enabled: false }, rotationCheck: { enabled: false } };
  const moduleRef = await Test.createTestingModule({
    imports: [
      ...credentialsStackImports({
        database: db.options,
        vault: emu,
        keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20, breaker: { consecutiveFailures: 1000 } } },
        persistence: { outbox: { dispatch: false } },
        credentials: { ...credentials, clock, isGlobal: true },
      }),
      ScheduleModule.forRoot(),
      style === 'forRoot' ? RotationModule.forRoot({ clock, ...jobs, ...options }) : RotationModule.forRootAsync({ useFactory: async () => ({ clock, ...jobs, ...options }) }),
    ],
  }).compile();
  await moduleRef.init();
  return {
    moduleRef,
    credentials: moduleRef.get(CredentialsService),
    policies: moduleRef.get(RotationPolicyService),
    rotation: moduleRef.get(RotationService),
    revocation: moduleRef.get(RevocationService),
    expiry: moduleRef.get(ExpiryMonitorService),
    check: moduleRef.get(RotationCheckService),
    dataSource: moduleRef.get(DataSource),
  };
}

export async function outboxEvents(ds: DataSource, name: string, tenantId: string): Promise<Array<Record<string, unknown>>> {
  const rows = await ds.getRepository(OutboxEventEntity).find({ where: { name, tenantId }, order: { createdAt: 'ASC' } });
  return rows.map((r) => (typeof r.payload === 'string' ? JSON.parse(r.payload) : r.payload) as Record<string, unknown>);
}


export interface UseRotationStackOptions {
  clock: ManualClock;
  /** RotationModule options of every stack built in `beforeAll` (handlers, jobs). */
  module?: RotationModuleOptions;
  /** CredentialsModule options of every stack (its clock is `clock`). */
  credentials?: Omit<CredentialsModuleOptions, 'clock'>;
  style?: 'forRoot' | 'forRootAsync';
  /** Stacks ("replicas") on the one vault and database; 0 where the spec builds its own per test. */
  replicas?: number;
  /**
   * The logger the spec reads, installed once the stacks compiled (the testing module installs its own). Without it a
   * fresh CapturingLogger keeps the run quiet from the start.
   */
  logger?: CapturingLogger;
}

/** The first replica's stack, with the vault and database it runs on. */
export interface RotationStackHandle extends RotationStack {
  readonly emu: KeyVaultEmulator;
  readonly db: TestDatabase;
  /** Replica `i` (0-based) of `replicas`. */
  replica(i: number): RotationStack;
  readonly stacks: readonly RotationStack[];
}

const STACK_PARTS = ['moduleRef', 'credentials', 'policies', 'rotation', 'revocation', 'expiry', 'check', 'dataSource'] as const satisfies ReadonlyArray<keyof RotationStack>;

/**
 * The lifecycle of a rotation int-spec: a local vault, a fresh database of `kind` and `replicas` stacks on them in
 * `beforeAll`, vault denials cleared after each test, all closed (and Nest's logger restored) after the last one.
 * What it returns reads through to what `beforeAll` built, so a describe block can hold it in a `const`.
 */
export function useRotationStack(kind: TestDatabaseKind, options: UseRotationStackOptions): RotationStackHandle {
  const { clock, module = {}, style = 'forRoot', replicas = 1, logger, credentials } = options;
  let emu: KeyVaultEmulator | undefined;
  let db: TestDatabase | undefined;
  const stacks: RotationStack[] = [];
  beforeAll(async () => {
    if (!logger) Logger.overrideLogger(new CapturingLogger());
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase(kind);
    for (let i = 0; i < replicas; i++) stacks.push(await buildRotationStack(db, emu, clock, module, style, credentials));
    if (logger) Logger.overrideLogger(logger);
  });
  afterEach(() => emu?.clearDenials());
  afterAll(async () => {
    for (const s of stacks.splice(0)) await s.moduleRef.close();
    await db?.drop();
    await emu?.stop();
    Logger.overrideLogger(new Logger());
  });
  const built = <T>(part: T | undefined, what: string): T => {
    if (part === undefined) throw new Error(`useRotationStack: no ${what} outside the tests (or beforeAll failed)`);
    return part;
  };
  const replica = (i: number): RotationStack => {
    const view = {} as RotationStack;
    for (const key of STACK_PARTS) Object.defineProperty(view, key, { enumerable: true, get: () => built(stacks[i], `replica ${i}`)[key] });
    return view;
  };
  return Object.defineProperties(replica(0) as RotationStackHandle, {
    emu: { get: () => built(emu, 'vault') },
    db: { get: () => built(db, 'database') },
    stacks: { get: () => stacks },
    replica: { value: replica },
  });
}

/** Stores an envelope value for the tenant, so its data key exists already, as in a live vault. */
export async function withEnvelopeDataKey(s: Pick<RotationStack, 'credentials'>, ctx: OperationContext): Promise<void> {
  await s.credentials.store(ctx, { integrationId: 'other', connectionId: 'e', type: CredentialType.CUSTOM_SECRET, value: 'x'.repeat(20), valueStore: ValueStoreKind.ENVELOPE });
}

/**
 * A manual rotation of the credential while the vault refuses writes (FORBIDDEN 1010): the handler's minted value is
 * kept as the credential's pending rotation value, which this returns. The vault takes writes again afterwards.
 */
export async function keepPendingValue(s: Pick<RotationStackHandle, 'emu' | 'rotation'>, ctx: OperationContext, credentialId: string): Promise<PendingRotation> {
  s.emu.deny({ operations: ['setSecret'] });
  try {
    await expect(s.rotation.rotate(ctx, credentialId, { reason: 'manual' })).rejects.toMatchObject({ code: 1010 });
  } finally {
    s.emu.clearDenials();
  }
  const pending = await s.rotation.pendingRotation(ctx, credentialId);
  expect(pending).toMatchObject({ credentialId });
  return pending!;
}

/**
 * PostgreSQL: the session holding `credentialId`'s rotation lock ends (a failover, pg_terminate_backend) while its
 * holder goes on, so the lock is free for another replica. Resolves once the server let it go.
 */
export function endRotationLockSession(ds: DataSource, credentialId: string): Promise<void> {
  return endLockSessionOfKey(ds, prefixedLockKey('credentialRotation', credentialId));
}
