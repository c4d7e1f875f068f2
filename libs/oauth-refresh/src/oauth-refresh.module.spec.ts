import { DistributedLock } from '@app/common';
import { CredentialExpiryScanner, CredentialsService } from '@app/credentials';
import { bootstrapError, globalStubs } from '@app/testing';
import { OAuthRefreshConfigurationError, OAuthRefreshModule } from './index';

describe('OAuthRefreshModule wiring', () => {
  it('fails bootstrap with a configuration error naming AuditModule when the host did not register it (not Nest\'s "can\'t resolve dependencies")', async () => {
    // The rest of the host as stubs: AuditModule is what the app forgot.
    const err = await bootstrapError([globalStubs(CredentialsService, CredentialExpiryScanner, DistributedLock), OAuthRefreshModule.forRoot({ proactive: { enabled: false } })]);
    expect(err).toBeInstanceOf(OAuthRefreshConfigurationError);
    expect(err.message).toBe(
      'OAuthRefreshModule needs AuditModule.forRoot({ ..., isGlobal: true }) or AuditModule.forRootAsync({ ..., isGlobal: true }) ' +
        '(the audit entry: @app/audit in this repo, @credential-vault/nest/audit from the package) in the host, once (missing: AuditService)',
    );
  });
});
