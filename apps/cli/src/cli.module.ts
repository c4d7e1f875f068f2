import { Module } from '@nestjs/common';
import { ApiKeyCreateCommand } from './commands/api-key.command';
import { AuditVerifyCommand } from './commands/audit-verify.command';
import { EmulatorCommand } from './commands/emulator.command';

@Module({ providers: [ApiKeyCreateCommand, AuditVerifyCommand, EmulatorCommand] })
export class CliModule {}
