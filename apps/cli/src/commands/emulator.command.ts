import { Command, CommandRunner } from 'nest-commander';
import { runEmulatorCli } from '@app/keyvault-emulator';

/** `cli emulator [flags]`: the same as `npm run emulator -- [flags]`. */
@Command({
  name: 'emulator',
  description: 'Start the local Key Vault (development and tests only); --help lists its flags',
  options: { isDefault: false },
  argsDescription: { flags: 'the emulator flags, e.g. --port 8443 --data-dir ./data/vault' },
  arguments: '[flags...]',
  // The flags are the emulator's own parser's: commander would refuse `--port` as an unknown option.
  allowUnknownOptions: true,
})
export class EmulatorCommand extends CommandRunner {
  override setCommand(command: Parameters<CommandRunner['setCommand']>[0]): this {
    // `--help` goes to the emulator too, which lists its flags (commander's help knows none of them).
    command.helpOption(false);
    return super.setCommand(command);
  }

  async run(args: string[]): Promise<void> {
    await runEmulatorCli(args);
  }
}
