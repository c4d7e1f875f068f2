import { Global, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import { DistributedLock, Outbox, OutboxHandlerRegistry, TransactionRunner } from '@app/common';
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
});
