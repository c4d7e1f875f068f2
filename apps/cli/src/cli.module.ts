import { Module } from '@nestjs/common';
import { ApiKeyCreateCommand } from './commands/api-key.command';
import { EmulatorCommand } from './commands/emulator.command';

@Module({ providers: [ApiKeyCreateCommand, EmulatorCommand] })
export class CliModule {}
