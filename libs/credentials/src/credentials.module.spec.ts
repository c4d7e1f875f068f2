import { Global, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import { Outbox, OutboxHandlerRegistry, TransactionRunner } from '@app/common';
import { KeyVaultProvider } from '@app/key-vault';
import { CapturingLogger, bootstrapError, globalStubs } from '@app/testing';
import { CredentialsConfigurationError, CredentialsModule, ReadAuditCoalescer } from './index';

/** Everything else the module needs from a host, as stubs: only the persistence kit is missing. */
@Global()
@Module({
  providers: [
    { provide: AuditService, useValue: {} },
    { provide: KeyVaultProvider, useValue: {} },
  ],
  exports: [AuditService, KeyVaultProvider],
})
class HostStubsModule {}

/** The host's PersistenceModule, as stubs (enough for the module to start on "SQLite"). */
@Global()
@Module({
  providers: [{ provide: TransactionRunner, useValue: { dataSource: { options: { type: 'better-sqlite3' } } } }, { provide: Outbox, useValue: {} }, OutboxHandlerRegistry],
  exports: [TransactionRunner, Outbox, OutboxHandlerRegistry],
})
class PersistenceStubsModule {}

/** An AuditModule registered without `isGlobal: true`: only the module importing it sees AuditService. */
@Module({ providers: [{ provide: AuditService, useValue: {} }], exports: [AuditService] })
class LocalAuditModule {}

describe('CredentialsModule wiring', () => {
  it('fails bootstrap with a configuration error naming PersistenceModule when the host did not register it', async () => {
    const err = await bootstrapError([HostStubsModule, CredentialsModule.forRoot({})]);
    expect(err).toBeInstanceOf(CredentialsConfigurationError);
    expect(err.message).toMatch(/PersistenceModule\.forRoot\(\) \(the common entry: @app\/common in this repo/);
    expect(err.message).toMatch(/missing: TransactionRunner, Outbox, OutboxHandlerRegistry/);
  });

  it('fails bootstrap with a configuration error naming KeyVaultModule when the host did not register it (not Nest\'s "can\'t resolve dependencies")', async () => {
    const err = await bootstrapError([PersistenceStubsModule, globalStubs(AuditService), CredentialsModule.forRoot({})]);
    expect(err).toBeInstanceOf(CredentialsConfigurationError);
    expect(err.message).toMatch(/^CredentialsModule needs KeyVaultModule\.forRoot\(\{ \.\.\., isGlobal: true \}\) or KeyVaultModule\.forRootAsync\(\{ \.\.\., isGlobal: true \}\) \(the key-vault entry: @app\/key-vault in this repo, @credential-vault\/nest\/key-vault from the package\)/);
    expect(err.message).toMatch(/in the host, once \(missing: KeyVaultProvider\)$/);
  });

  it('fails bootstrap naming AuditModule and isGlobal when the host registered AuditModule without isGlobal', async () => {
    const err = await bootstrapError([PersistenceStubsModule, globalStubs(KeyVaultProvider), LocalAuditModule, CredentialsModule.forRoot({})]);
    expect(err).toBeInstanceOf(CredentialsConfigurationError);
    expect(err.message).toMatch(/^CredentialsModule needs AuditModule\.forRoot\(\{ \.\.\., isGlobal: true \}\) or AuditModule\.forRootAsync\(\{ \.\.\., isGlobal: true \}\) \(the audit entry/);
    expect(err.message).toMatch(/\(missing: AuditService\); LocalAuditModule exports it but is not global: only the module importing it sees it$/);
  });

  it("starts with a host module given in forRootAsync's imports (the lib module sees it there, without isGlobal)", async () => {
    const app = await Test.createTestingModule({
      imports: [PersistenceStubsModule, globalStubs(KeyVaultProvider), CredentialsModule.forRootAsync({ imports: [LocalAuditModule], useFactory: () => ({}) })],
    })
      .setLogger(new CapturingLogger())
      .compile();
    try {
      expect((app.get(ReadAuditCoalescer, { strict: false }) as unknown as { audit: unknown }).audit).toBe(app.select(LocalAuditModule).get(AuditService));
    } finally {
      await app.close();
    }
  });

  it("starts with every host module global: its classes get the host's instances, whose lifecycle hooks run once", async () => {
    class CountingAudit {
      inits = 0;
      onModuleInit(): void {
        this.inits++;
      }
    }
    @Global()
    @Module({ providers: [{ provide: AuditService, useClass: CountingAudit }], exports: [AuditService] })
    class CountingAuditModule {}
    const app = await Test.createTestingModule({ imports: [PersistenceStubsModule, globalStubs(KeyVaultProvider), CountingAuditModule, CredentialsModule.forRoot({})] })
      .setLogger(new CapturingLogger())
      .compile();
    try {
      await app.init();
      const audit = app.select(CountingAuditModule).get<CountingAudit>(AuditService);
      expect((app.get(ReadAuditCoalescer, { strict: false }) as unknown as { audit: unknown }).audit).toBe(audit);
      expect(audit.inits).toBe(1);
    } finally {
      await app.close();
    }
  });
});
