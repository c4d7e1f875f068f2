import { ScheduleModule } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import { TypeOrmModule, type TypeOrmModuleOptions } from '@nestjs/typeorm';
import { AUDIT_ENTITIES, AUDIT_MIGRATIONS } from '@app/audit';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS } from '@app/common';
import { CREDENTIALS_ENTITIES, CREDENTIALS_MIGRATIONS } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, rejection } from '@app/testing';
import { RotationConfigurationError } from './errors/rotation.errors';
import { RotationModule } from './rotation.module';

describe('RotationModule in a host', () => {
  it("refuses to start when the host's DataSource lacks its tables, naming ROTATION_ENTITIES (every rotation failed later with a TypeORM error)", async () => {
    const emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    const db = await createTestDatabase('sqlite');
    try {
      const [, ...stack] = credentialsStackImports({ database: db.options, vault: emu, credentials: { isGlobal: true }, persistence: { outbox: { dispatch: false } } });
      const withoutRotation = TypeOrmModule.forRoot({
        ...db.options,
        entities: [...CREDENTIALS_ENTITIES, ...AUDIT_ENTITIES, ...OUTBOX_ENTITIES],
        migrations: [...CREDENTIALS_MIGRATIONS, ...AUDIT_MIGRATIONS, ...OUTBOX_MIGRATIONS],
        migrationsRun: true,
      } as TypeOrmModuleOptions);
      const rotation = RotationModule.forRoot({ expiryMonitor: { enabled: false }, rotationCheck: { enabled: false }, webhooks: { job: { enabled: false } } });
      const error = await rejection(Test.createTestingModule({ imports: [withoutRotation, ...stack, ScheduleModule.forRoot(), rotation] }).compile());
      expect(error).toBeInstanceOf(RotationConfigurationError);
      expect((error as Error).message).toMatch(/missing: .*RotationHistoryEntity.*add ROTATION_ENTITIES to its entities and ROTATION_MIGRATIONS/);
    } finally {
      await db.drop();
      await emu.stop();
    }
  });
});
