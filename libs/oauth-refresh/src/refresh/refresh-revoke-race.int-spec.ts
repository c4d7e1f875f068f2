/**
 * An emergency revoke that lands while a refresh waits for the provider: the refresh's writes would
 * rotate the tokens (a rotation makes a credential active), so the revoke must win — the refresh fails
 * REAUTH_REQUIRED (saying it was revoked), both tokens stay revoked, and the provider's new tokens are kept nowhere.
 */
import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import { ManualClock, type OperationContext } from '@app/common';
import { CredentialsService, CredentialStatus } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, credentialsStackImports, DATABASE_KINDS, rejection, type TestDatabase } from '@app/testing';
import { OAuthRefreshErrorCode, OAuthRefreshModule, OAuthRefreshService, OAuthTokenClient, type OAuthTokenSet } from '../index';

/** A provider that answers when the test opens the gate. */
class GatedClient extends OAuthTokenClient {
  gate?: Promise<void>;
  entered?: () => void;
  readonly issued: string[] = [];
  async refresh(): Promise<OAuthTokenSet> {
    this.entered?.();
    if (this.gate) await this.gate;
    const set = { accessToken: `at_${randomBytes(8).toString('hex')}`, refreshToken: `rt_${randomBytes(8).toString('hex')}`, expiresIn: 3600, tokenType: 'Bearer' };
    this.issued.push(set.accessToken, set.refreshToken);
    return set;
  }
}

describe.each(DATABASE_KINDS)('a revoke during a refresh (%s)', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  const clock = new ManualClock(new Date());
  const client = new GatedClient();
  let oauth: OAuthRefreshService;
  let credentials: CredentialsService;
  let close: () => Promise<void>;
  const ctx: OperationContext = { tenantId: `t_${randomBytes(3).toString('hex')}`, actor: { id: 'user:ops' } };

  beforeAll(async () => {
    Logger.overrideLogger(new CapturingLogger());
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase(kind);
    const moduleRef = await Test.createTestingModule({
      imports: [
        ...credentialsStackImports({ database: db.options, vault: emu, credentials: { clock, isGlobal: true } }),
        ScheduleModule.forRoot(),
        OAuthRefreshModule.forRoot({ clock, providers: [{ integrationId: 'idp', tokenEndpoint: 'https://idp.example/token', clientId: 'c', clientAuthMethod: 'none' }], proactive: { enabled: false } }),
      ],
    })
      .overrideProvider(OAuthTokenClient)
      .useValue(client)
      .compile();
    await moduleRef.init();
    oauth = moduleRef.get(OAuthRefreshService);
    credentials = moduleRef.get(CredentialsService);
    close = () => moduleRef.close();
  });

  afterAll(async () => {
    await close?.();
    await emu?.stop();
    await db?.drop();
  });

  it('stays revoked: the refresh fails REAUTH_REQUIRED and its new tokens are stored nowhere', async () => {
    const stored = await oauth.storeOAuthCredentials(ctx, 'idp', 'c1', { access_token: 'at_initial_0001', refresh_token: 'rt_initial_0001', expires_in: 3600, token_type: 'Bearer' });
    clock.set(new Date(stored.expiresAt.getTime() - 60_000)); // inside the refresh window
    let open!: () => void;
    client.gate = new Promise((resolve) => (open = resolve));
    const entered = new Promise<void>((resolve) => (client.entered = resolve));
    const refreshing = oauth.getAccessToken(ctx, 'idp', 'c1');
    await entered;
    // The emergency revoke, as RevocationService does it: the status in one transaction, then the vault.
    const ids = [stored.accessTokenCredentialId, stored.refreshTokenCredentialId!];
    for (const id of ids) {
      await credentials.updateMetadata(ctx, id, { status: CredentialStatus.REVOKED });
      await credentials.revoke(ctx, id);
    }
    open();

    // Said as it happened: revoked, not "marked needs_reauth" (which the provider's invalid_grant does).
    const race = await rejection(refreshing);
    expect(race).toMatchObject({ code: OAuthRefreshErrorCode.REAUTH_REQUIRED, message: expect.stringContaining('the connection was revoked during the refresh') });
    expect((race as Error).message).not.toContain('needs_reauth');
    expect((race as Error).message).toContain('POST /v1/oauth/connections/{integrationId}/{connectionId}/tokens'); // where new tokens go
    for (const id of ids) {
      expect(await credentials.getMetadata(ctx, id)).toMatchObject({ status: CredentialStatus.REVOKED, version: 1 });
      await expect(credentials.get(ctx, id)).rejects.toMatchObject({ code: 2009 });
    }
    // No pending refresh token (or any other credential) holds what the provider handed out.
    const all = (await credentials.list(ctx, { limit: 100 })).items;
    expect(all.map((m) => m.id).sort()).toEqual([...ids].sort());
    const later = await rejection(oauth.getAccessToken(ctx, 'idp', 'c1'));
    expect(later).toMatchObject({ code: OAuthRefreshErrorCode.REAUTH_REQUIRED, message: expect.stringContaining('the connection is revoked') });
    expect((later as Error).message).not.toContain('needs_reauth');
  });
});
