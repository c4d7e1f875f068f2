import { randomBytes } from 'node:crypto';
import { AuditService } from '@app/audit';
import { Outbox, OutboxHandlerRegistry, TransactionRunner } from '@app/common';
import { CredentialsService } from '@app/credentials';
import { bootstrapError, globalStubs } from '@app/testing';
import { MigrationConfigurationError, MigrationModule } from './index';

const options = { keys: [randomBytes(32).toString('hex')] };

describe('MigrationModule wiring', () => {
  it('fails bootstrap with a configuration error naming CredentialsModule when the host did not register it (not Nest\'s "can\'t resolve dependencies")', async () => {
    const err = await bootstrapError([globalStubs(AuditService, TransactionRunner, Outbox, OutboxHandlerRegistry), MigrationModule.forRoot(options)]);
    expect(err).toBeInstanceOf(MigrationConfigurationError);
    // The whole message is the start-up check's: not presented as a problem of MigrationModule's options.
    expect(err.message).toBe(
      'MigrationModule needs CredentialsModule.forRoot({ ..., isGlobal: true }) or CredentialsModule.forRootAsync({ ..., isGlobal: true }) ' +
        '(the credentials entry: @app/credentials in this repo, @credential-vault/nest/credentials from the package) in the host, once (missing: CredentialsService)',
    );
  });

  it('fails bootstrap with a configuration error naming PersistenceModule when the host did not register it', async () => {
    const err = await bootstrapError([globalStubs(AuditService, CredentialsService), MigrationModule.forRoot(options)]);
    expect(err).toBeInstanceOf(MigrationConfigurationError);
    expect(err.message).toBe(
      'MigrationModule needs PersistenceModule.forRoot() (the common entry: @app/common in this repo, @credential-vault/nest/common from the package) in the host, once ' +
        '(missing: TransactionRunner, Outbox, OutboxHandlerRegistry); with OUTBOX_ENTITIES and OUTBOX_MIGRATIONS in TypeOrmModule.forRoot',
    );
  });
});
