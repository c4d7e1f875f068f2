import { Test, type TestingModule } from '@nestjs/testing';
import { TypeOrmModule, type TypeOrmModuleOptions } from '@nestjs/typeorm';
import { AUDIT_ENTITIES, AUDIT_MIGRATIONS } from '@app/audit';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS } from '@app/common';
import { CREDENTIALS_ENTITIES, CREDENTIALS_MIGRATIONS } from '@app/credentials';
import type { KeyVaultEmulator } from '@app/keyvault-emulator';
import { type CapturingLogger, credentialsStackImports, type TestDatabase } from '@app/testing';
import { NOTIFICATION_ENTITIES, NOTIFICATION_MIGRATIONS, NOTIFICATION_OPTIONS, NOTIFICATION_PROVIDERS, type NotificationOptions } from '../index';

/** Test-only (not exported by the lib): the credentials stack with the notification providers and tables, outbox polling fast. */
export async function buildNotificationsApp(db: TestDatabase, emu: KeyVaultEmulator, logger: CapturingLogger, notifications: NotificationOptions): Promise<TestingModule> {
  const [typeorm, ...stack] = credentialsStackImports({
    database: db.options,
    vault: emu,
    credentials: { isGlobal: true },
    persistence: { outbox: { pollIntervalMs: 50, backoff: { baseMs: 10, maxMs: 50 } } },
  });
  // The stack's TypeORM module, plus the notification tables.
  if (typeorm.module !== TypeOrmModule) throw new Error('credentialsStackImports no longer starts with TypeOrmModule');
  const database = TypeOrmModule.forRoot({
    ...db.options,
    entities: [...CREDENTIALS_ENTITIES, ...AUDIT_ENTITIES, ...OUTBOX_ENTITIES, ...NOTIFICATION_ENTITIES],
    migrations: [...CREDENTIALS_MIGRATIONS, ...AUDIT_MIGRATIONS, ...OUTBOX_MIGRATIONS, ...NOTIFICATION_MIGRATIONS],
    migrationsRun: true,
    synchronize: false,
    logging: false,
  } as TypeOrmModuleOptions);
  const moduleRef = await Test.createTestingModule({
    imports: [database, ...stack],
    providers: [...NOTIFICATION_PROVIDERS, { provide: NOTIFICATION_OPTIONS, useValue: notifications }],
  })
    .setLogger(logger)
    .compile();
  await moduleRef.init();
  return moduleRef;
}

