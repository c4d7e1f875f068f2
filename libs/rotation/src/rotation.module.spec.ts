import { Global, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import { DistributedLock, Outbox, OutboxHandlerRegistry, PERSISTENCE_RESOLVED_OPTIONS, TransactionRunner, resolvePersistenceOptions } from '@app/common';
import { CredentialExpiryScanner, CredentialsService } from '@app/credentials';
import { CapturingLogger, bootstrapError, globalStubs, rejection } from '@app/testing';
import { RotationConfigurationError, RotationModule } from './index';

/** Everything else the module needs from a host, as stubs: only the persistence kit is missing. */
@Global()
@Module({
  providers: [
    { provide: AuditService, useValue: {} },
    { provide: CredentialsService, useValue: {} },
    { provide: CredentialExpiryScanner, useValue: {} },
    { provide: DistributedLock, useValue: {} },
  ],
  exports: [AuditService, CredentialsService, CredentialExpiryScanner, DistributedLock],
})
class HostStubsModule {}

const jobsOff = { expiryMonitor: { enabled: false }, rotationCheck: { enabled: false }, webhooks: { job: { enabled: false } } };

/** The resolved options a host's PersistenceModule exports (the rest of it as stubs). */
@Module({})
class HostOutboxOptions {}
const hostOutbox = (outbox: { dispatch?: boolean; handlerTimeoutMs?: number }) => ({
  module: HostOutboxOptions,
  global: true,
  providers: [{ provide: PERSISTENCE_RESOLVED_OPTIONS, useValue: resolvePersistenceOptions({ outbox }) }],
  exports: [PERSISTENCE_RESOLVED_OPTIONS],
});

describe('RotationModule wiring', () => {
  it('fails bootstrap with a configuration error naming PersistenceModule when the host did not register it (not Nest\'s "can\'t resolve dependencies")', async () => {
    const builder = Test.createTestingModule({ imports: [HostStubsModule, RotationModule.forRoot(jobsOff)] }).setLogger(new CapturingLogger());
    const err = await rejection(builder.compile().then((app) => app.close()));
    expect(err).toBeInstanceOf(RotationConfigurationError);
    expect(err.message).toMatch(/RotationModule needs PersistenceModule\.forRoot\(\) \(the common entry: @app\/common in this repo, @credential-vault\/nest\/common from the package\)/);
    expect(err.message).toMatch(/missing: TransactionRunner, Outbox, OutboxHandlerRegistry/);
  });

  it('fails bootstrap naming CredentialsModule and isGlobal when the host registered CredentialsModule without isGlobal', async () => {
    /** `CredentialsModule.forRoot({})` without `isGlobal: true`, as a stub of the same name. */
    @Module({ providers: [{ provide: CredentialsService, useValue: {} }, { provide: CredentialExpiryScanner, useValue: {} }], exports: [CredentialsService, CredentialExpiryScanner] })
    class CredentialsModule {}
    const err = await bootstrapError([globalStubs(AuditService, DistributedLock, TransactionRunner, Outbox, OutboxHandlerRegistry), CredentialsModule, RotationModule.forRoot(jobsOff)]);
    expect(err).toBeInstanceOf(RotationConfigurationError);
    expect(err.message).toMatch(/^RotationModule needs CredentialsModule\.forRoot\(\{ \.\.\., isGlobal: true \}\) or CredentialsModule\.forRootAsync\(\{ \.\.\., isGlobal: true \}\) \(the credentials entry: @app\/credentials in this repo, @credential-vault\/nest\/credentials from the package\) in the host/);
    expect(err.message).toMatch(/\(missing: CredentialsService, CredentialExpiryScanner\); CredentialsModule exports it but is not global/);
  });

  it("fails bootstrap when the notifications' send wait does not fit the dispatching outbox's handlerTimeoutMs, in the one options error", async () => {
    const stubs = globalStubs(AuditService, CredentialsService, CredentialExpiryScanner, DistributedLock, TransactionRunner, Outbox, OutboxHandlerRegistry);
    const options = { ...jobsOff, rotationCheck: { enabled: false, batchSize: 0 }, notifications: { sendWaitMs: 5000 } };
    const err = await bootstrapError([stubs, hostOutbox({ handlerTimeoutMs: 5500 }), RotationModule.forRoot(options)]);
    expect(err).toBeInstanceOf(RotationConfigurationError);
    expect(err.message).toMatch(/rotationCheck\.batchSize: .*\n.*notifications\.sendWaitMs: must be at least 1000 ms less than the outbox's handlerTimeoutMs/);
    // The default wait (1 s) and a process that only writes events (dispatch: false) pass this check.
    for (const outbox of [{ handlerTimeoutMs: 2000 }, { dispatch: false, handlerTimeoutMs: 5500 }]) {
      const other = await bootstrapError([stubs, hostOutbox(outbox), RotationModule.forRoot({ ...options, notifications: outbox.dispatch === false ? options.notifications : {} })]);
      expect(other.message).not.toMatch(/sendWaitMs/);
    }
  });
});
