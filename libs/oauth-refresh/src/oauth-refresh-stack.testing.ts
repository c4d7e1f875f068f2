/** Test helper (kept out of the package): one OAuthRefreshModule app on the real credentials stack. */
import { Logger, type LoggerService } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { ScheduleModule } from '@nestjs/schedule';
import { Test, type TestingModule } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import type { ManualClock } from '@app/common';
import { CredentialsService } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, TestOAuthServer, type CapturingLogger, type TestDatabase, type TestDatabaseKind, type TestOAuthServerOptions } from '@app/testing';
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
 * With `secretId` (another replica on the same database stored it), the stored one is referenced.
 */
export async function registerTestProvider(stack: Stack, server: TestOAuthServer, integrationId: string, extra: Partial<OAuthProviderConfig> = {}, secretId?: string): Promise<string> {
  const credentialId =
    secretId ??
    (
      await stack.credentials.store(
        { tenantId: 'system', actor: { id: 'system:setup' } },
        { integrationId, connectionId: 'oauth-client', type: CredentialType.CUSTOM_SECRET, value: server.clientSecret },
      )
    ).id;
  stack.moduleRef.get(OAuthProviderRegistry).register({
    integrationId,
    issuer: server.issuer,
    clientId: server.clientId,
    clientSecret: { tenantId: 'system', credentialId },
    allowInsecureRequests: true,
    ...extra,
  });
  return credentialId;
}

/** Closes what a spec's `beforeAll` opened (each when it got that far) and gives Nest its default logger back. */
export async function closeTestStack(parts: { stack?: Stack; server?: TestOAuthServer; emu?: KeyVaultEmulator; db?: TestDatabase }): Promise<void> {
  await parts.stack?.moduleRef.close();
  await parts.server?.close();
  await parts.emu?.stop();
  await parts.db?.drop();
  Logger.overrideLogger(new Logger());
}

export interface UseOAuthStackOptions {
  clock: ManualClock;
  /** Nest's logger from the start, and the app's: the spec reads its lines. */
  logger: CapturingLogger;
  server?: TestOAuthServerOptions;
  /** The module's options; a function where they name the server (its issuer). */
  oauth: OAuthRefreshModuleOptions | ((server: TestOAuthServer) => OAuthRefreshModuleOptions);
  style?: 'forRoot' | 'forRootAsync';
  /** The provider registered for the server once the app runs (see registerTestProvider). */
  provider: { integrationId: string; extra?: Partial<OAuthProviderConfig> };
}

/** The app's stack, with the vault, database and OAuth server it runs on. */
export interface OAuthStackHandle extends Stack {
  readonly emu: KeyVaultEmulator;
  readonly db: TestDatabase;
  readonly server: TestOAuthServer;
  /** The id of the provider's client-secret credential (system tenant). */
  readonly clientSecretId: string;
}

/**
 * The lifecycle of an OAuth refresh int-spec: a local vault, a fresh database of `kind`, a real OAuth server and one
 * app with the server registered as `provider`, in `beforeAll`; vault denials cleared after each test; all closed (and
 * Nest's logger restored) after the last one. What it returns reads through to what `beforeAll` built.
 */
export function useOAuthStack(kind: TestDatabaseKind, options: UseOAuthStackOptions): OAuthStackHandle {
  const { clock, logger, style = 'forRoot', provider } = options;
  const parts: { stack?: Stack; server?: TestOAuthServer; emu?: KeyVaultEmulator; db?: TestDatabase; clientSecretId?: string } = {};
  beforeAll(async () => {
    Logger.overrideLogger(logger);
    parts.emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    parts.db = await createTestDatabase(kind);
    const server = (parts.server = await TestOAuthServer.start(options.server));
    const oauth = typeof options.oauth === 'function' ? options.oauth(server) : options.oauth;
    parts.stack = await buildStack(parts.db, parts.emu, clock, logger, oauth, style);
    parts.clientSecretId = await registerTestProvider(parts.stack, server, provider.integrationId, provider.extra);
  });
  afterEach(() => parts.emu?.clearDenials());
  afterAll(() => closeTestStack(parts));
  const built = <K extends keyof typeof parts>(key: K): NonNullable<(typeof parts)[K]> => {
    const part = parts[key];
    if (part === undefined) throw new Error(`useOAuthStack: no ${key} outside the tests (or beforeAll failed)`);
    return part as NonNullable<(typeof parts)[K]>;
  };
  const handle = {} as OAuthStackHandle;
  for (const key of ['moduleRef', 'oauth', 'credentials', 'audit', 'events'] as const satisfies ReadonlyArray<keyof Stack>) {
    Object.defineProperty(handle, key, { enumerable: true, get: () => built('stack')[key] });
  }
  for (const key of ['emu', 'db', 'server', 'clientSecretId'] as const) Object.defineProperty(handle, key, { enumerable: true, get: () => built(key) });
  return handle;
}
