import { Module, type OnApplicationBootstrap } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { CommandRunner } from 'nest-commander';
import { ApiKeyCreateCommand } from './commands/api-key.command';
import { AuditVerifyCommand } from './commands/audit-verify.command';
import { BackupCommand, RestoreCommand } from './commands/backup.command';
import { DataKeyReencryptCommand, DataKeyRewrapCommand, DataKeyRotateCommand } from './commands/data-key.command';
import { EmulatorCommand } from './commands/emulator.command';
import { MigrateCommand } from './commands/migrate/migrate.command';
import { SeedLegacyCommand } from './commands/migrate/seed-legacy.command';
import { OrphanVersionsCommand } from './commands/orphan-versions.command';
import { PoliciesListCommand, RevokeCommand, RotateCommand, RotationCheckCommand, WebhookRotateCommand } from './commands/rotation.command';

const COMMANDS = [
  ApiKeyCreateCommand,
  AuditVerifyCommand,
  BackupCommand,
  RestoreCommand,
  DataKeyRotateCommand,
  DataKeyReencryptCommand,
  DataKeyRewrapCommand,
  EmulatorCommand,
  MigrateCommand,
  SeedLegacyCommand,
  RotationCheckCommand,
  OrphanVersionsCommand,
  PoliciesListCommand,
  RotateCommand,
  RevokeCommand,
  WebhookRotateCommand,
];

@Module({ providers: COMMANDS })
export class CliModule implements OnApplicationBootstrap {
  constructor(private readonly moduleRef: ModuleRef) {}

  /**
   * commander 11 (nest-commander's) ignores arguments a command does not declare: `backup --tenant t1 t1.cvbak`
   * (no --out) went on, and `audit:verify yes` verified. They are a parse error, as an unknown option is
   * (`emulator` declares `[flags...]` and keeps them). Runs after nest-commander built the commands (its onModuleInit).
   */
  onApplicationBootstrap(): void {
    for (const type of COMMANDS) this.moduleRef.get<CommandRunner>(type)['command'].allowExcessArguments(false);
  }
}
