import { Global, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import { KeyVaultProvider } from '@app/key-vault';
import { CapturingLogger, rejection } from '@app/testing';
import { CredentialsConfigurationError, CredentialsModule } from './index';

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

describe('CredentialsModule wiring', () => {
  it('fails bootstrap with a configuration error naming PersistenceModule when the host did not register it', async () => {
    const builder = Test.createTestingModule({ imports: [HostStubsModule, CredentialsModule.forRoot({})] }).setLogger(new CapturingLogger());
    const err = await rejection(builder.compile().then((app) => app.close()));
    expect(err).toBeInstanceOf(CredentialsConfigurationError);
    expect(err.message).toMatch(/PersistenceModule\.forRoot\(\) \(the common entry: @app\/common in this repo/);
    expect(err.message).toMatch(/missing: TransactionRunner, Outbox, OutboxHandlerRegistry/);
  });
});
