/** Test helper (kept out of the package): one OAuthRefreshModule app on the real credentials stack. */
import type { LoggerService } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { ScheduleModule } from '@nestjs/schedule';
import { Test, type TestingModule } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import type { ManualClock } from '@app/common';
import { CredentialsService } from '@app/credentials';
import type { KeyVaultEmulator } from '@app/keyvault-emulator';
import { credentialsStackImports, type TestDatabase } from '@app/testing';
import { OAuthRefreshEvents, OAuthRefreshModule, OAuthRefreshService, type OAuthRefreshModuleOptions } from './index';

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
