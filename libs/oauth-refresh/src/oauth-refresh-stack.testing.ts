/** Test helper (kept out of the package): one OAuthRefreshModule app on the real credentials stack. */
import { Logger, type LoggerService } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { ScheduleModule } from '@nestjs/schedule';
import { Test, type TestingModule } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import type { ManualClock } from '@app/common';
import { CredentialsService } from '@app/credentials';
import type { KeyVaultEmulator } from '@app/keyvault-emulator';
import { credentialsStackImports, type TestDatabase, type TestOAuthServer } from '@app/testing';
import { OAuthProviderRegistry, OAuthRefreshEvents, OAuthRefreshModule, OAuthRefreshService, type OAuthProviderConfig, type OAuthRefreshModuleOptions } from './index';
import { CredentialType } from '@app/credentials';

export interface Stack {
  moduleRef: TestingModule;
  oauth: OAuthRefreshService;
  credentials: CredentialsService;
  audit: AuditService;
  events: Array<{ name: string; payload: unknown }>;
}

/** One "replica": its own Nest app, credential cache, lock instance and DB pool, on a shared database. */
export async function buildStack(
  db: TestDatabase,
  emu: KeyVaultEmulator,
  clock: ManualClock,
  logger: LoggerService,
  oauthOptions: OAuthRefreshModuleOptions,
  style: 'forRoot' | 'forRootAsync' = 'forRoot',
): Promise<Stack> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      ...credentialsStackImports({
        database: db.options,
        vault: emu,
        keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20, breaker: { consecutiveFailures: 1000 } } },
        credentials: { clock, isGlobal: true },
      }),
      ScheduleModule.forRoot(),
      style === 'forRoot'
        ? OAuthRefreshModule.forRoot({ clock, ...oauthOptions })
        : OAuthRefreshModule.forRootAsync({ useFactory: async () => ({ clock, ...oauthOptions }) }),
    ],
  })
    .setLogger(logger)
    .compile();
  await moduleRef.init();
  const events: Stack['events'] = [];
  const emitter = moduleRef.get(EventEmitter2);
  for (const name of Object.values(OAuthRefreshEvents)) emitter.on(name, (payload: unknown) => events.push({ name, payload }));
  return {
    moduleRef,
    oauth: moduleRef.get(OAuthRefreshService),
    credentials: moduleRef.get(CredentialsService),
    audit: moduleRef.get(AuditService),
    events,
  };
}

/**
 * Registers `server` as provider `integrationId` on `stack`, its client secret stored in the vault as a credential of
 * the system tenant (the provider configuration only references it), as a host does. Returns that credential's id.
 */
export async function registerTestProvider(stack: Stack, server: TestOAuthServer, integrationId: string, extra: Partial<OAuthProviderConfig> = {}): Promise<string> {
  const secret = await stack.credentials.store(
    { tenantId: 'system', actor: { id: 'system:setup' } },
    { integrationId, connectionId: 'oauth-client', type: CredentialType.CUSTOM_SECRET, value: server.clientSecret },
  );
  stack.moduleRef.get(OAuthProviderRegistry).register({
    integrationId,
    issuer: server.issuer,
    clientId: server.clientId,
    clientSecret: { tenantId: 'system', credentialId: secret.id },
    allowInsecureRequests: true,
    ...extra,
  });
  return secret.id;
}

/** Closes what a spec's `beforeAll` opened (each when it got that far) and gives Nest its default logger back. */
export async function closeTestStack(parts: { stack?: Stack; server?: TestOAuthServer; emu?: KeyVaultEmulator; db?: TestDatabase }): Promise<void> {
  await parts.stack?.moduleRef.close();
  await parts.server?.close();
  await parts.emu?.stop();
  await parts.db?.drop();
  Logger.overrideLogger(new Logger());
}
