import { randomBytes } from 'node:crypto';
import { DynamicModule, Module } from '@nestjs/common';
import { EventEmitter2, EventEmitterModule } from '@nestjs/event-emitter';
import { ScheduleModule } from '@nestjs/schedule';
import { Test, TestingModule } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AUDIT_ENTITIES, AUDIT_MIGRATIONS, AuditAnchorStore, AuditModule, AuditModuleOptions, AuditResult, AuditService } from '@app/audit';
import type { AuditEventInput } from '@app/audit';
import { Clock, DistributedLock, createDistributedLock } from '@app/common';
import type { TestDatabase } from '@app/testing';
import { DataSource } from 'typeorm';

export interface HarnessOptions {
  clock?: Clock;
  /** Register AuditModule with forRootAsync instead of forRoot. */
  async?: boolean;
  /** Import ScheduleModule.forRoot() (needed when retention is enabled). */
  schedule?: boolean;
  /** Provide a global DistributedLock built from the DataSource, as a host would. */
  lock?: boolean;
  /** Provide this global AuditAnchorStore, as a host would. */
  anchors?: AuditAnchorStore;
  /** Merged into the DataSource's driver options (`extra`), e.g. a host's PostgreSQL timeouts. */
  extra?: Record<string, unknown>;
  /** Another address of the same database (e.g. a proxy that can stall). */
  url?: string;
}

export interface AuditHarness {
  moduleRef: TestingModule;
  audit: AuditService;
  ds: DataSource;
  events: EventEmitter2;
  close(): Promise<void>;
}

/** A host module the way apps/api wires it: TypeORM + migrations, event emitter, optional scheduler. */
export async function startAudit(db: TestDatabase, options: AuditModuleOptions = {}, h: HarnessOptions = {}): Promise<AuditHarness> {
  const merged: AuditModuleOptions = { ...options, retention: { enabled: false, ...options.retention } };
  const hostProviders: DynamicModule[] = [];
  if (h.clock) hostProviders.push(globalModule([{ provide: Clock, useValue: h.clock }]));
  if (h.anchors) hostProviders.push(globalModule([{ provide: AuditAnchorStore, useValue: h.anchors }]));
  if (h.lock) {
    hostProviders.push(globalModule([{ provide: DistributedLock, useFactory: createDistributedLock, inject: [DataSource] }]));
  }
  // Track the DataSource so a failed start (bad options, missing scheduler) does not leak it.
  const created: Array<Promise<DataSource>> = [];
  const typeorm = TypeOrmModule.forRootAsync({
    useFactory: () => ({
      ...db.options,
      ...(h.url ? { url: h.url } : {}),
      ...(h.extra ? { extra: { ...(db.options as { extra?: object }).extra, ...h.extra } } : {}),
      entities: AUDIT_ENTITIES,
      migrations: AUDIT_MIGRATIONS,
      migrationsRun: true,
      retryAttempts: 0,
    }),
    dataSourceFactory: (o) => {
      const ds = new DataSource(o!).initialize();
      created.push(ds);
      return ds;
    },
  });
  const builder = Test.createTestingModule({
    imports: [
      typeorm,
      EventEmitterModule.forRoot(),
      ...(h.schedule ? [ScheduleModule.forRoot()] : []),
      ...hostProviders,
      h.async ? AuditModule.forRootAsync({ useFactory: async () => merged }) : AuditModule.forRoot(merged),
    ],
  });
  let moduleRef: TestingModule | undefined;
  try {
    moduleRef = await builder.compile();
    await moduleRef.init();
  } catch (e) {
    await moduleRef?.close().catch(() => undefined);
    for (const r of await Promise.allSettled(created)) {
      if (r.status === 'fulfilled' && r.value.isInitialized) await r.value.destroy();
    }
    throw e;
  }
  return {
    moduleRef,
    audit: moduleRef.get(AuditService),
    ds: moduleRef.get(DataSource),
    events: moduleRef.get(EventEmitter2),
    close: () => moduleRef.close(),
  };
}

function globalModule(providers: NonNullable<DynamicModule['providers']>): DynamicModule {
  @Module({})
  class HostProvidersModule {}
  return { module: HostProvidersModule, global: true, providers, exports: providers.map((p) => (p as { provide: unknown }).provide as never) };
}

/** Raw SQL with `?` placeholders on both databases (pg wants $1, $2...). */
export function exec<T = any>(ds: DataSource, sql: string, params: unknown[] = []): Promise<T> {
  let i = 0;
  const text = ds.options.type === 'postgres' ? sql.replace(/\?/g, () => `$${++i}`) : sql;
  return ds.query(text, params);
}

export async function countRows(ds: DataSource, tenantId: string): Promise<number> {
  const rows = await exec<Array<{ n: string | number }>>(ds, 'SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = ?', [tenantId]);
  return Number(rows[0].n);
}

export const tenant = (name = 't') => `${name}-${randomBytes(4).toString('hex')}`;

export function event(tenantId: string, over: Partial<AuditEventInput> = {}): AuditEventInput {
  return {
    action: 'read',
    context: { tenantId, actor: { id: 'user-1', ip: '10.0.0.1', userAgent: 'jest' }, correlationId: 'corr-1' },
    resource: 'cred-1',
    result: AuditResult.SUCCESS,
    ...over,
  };
}

export async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
