import { Module } from '@nestjs/common';
import { ApiKeyCreateCommand } from './commands/api-key.command';
import { AuditVerifyCommand } from './commands/audit-verify.command';
import { BackupCommand, RestoreCommand } from './commands/backup.command';
import { DataKeyReencryptCommand, DataKeyRewrapCommand, DataKeyRotateCommand } from './commands/data-key.command';
import { EmulatorCommand } from './commands/emulator.command';
import { MigrateCommand } from './commands/migrate/migrate.command';
import { SeedLegacyCommand } from './commands/migrate/seed-legacy.command';
import { OrphanVersionsCommand } from './commands/orphan-versions.command';
import { PoliciesListCommand, RevokeCommand, RotateCommand, RotationCheckCommand, WebhookRotateCommand } from './commands/rotation.command';

@Module({ providers: [ApiKeyCreateCommand, AuditVerifyCommand, BackupCommand, RestoreCommand, DataKeyRotateCommand, DataKeyReencryptCommand, DataKeyRewrapCommand, EmulatorCommand, MigrateCommand, SeedLegacyCommand, RotationCheckCommand, OrphanVersionsCommand, PoliciesListCommand, RotateCommand, RevokeCommand, WebhookRotateCommand] })
export class CliModule {}
