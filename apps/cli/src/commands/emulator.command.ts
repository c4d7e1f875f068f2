import { Command, CommandRunner } from 'nest-commander';
import { runEmulatorCli } from '@app/keyvault-emulator';

/** `cli emulator [flags]`: the same as `npm run emulator -- [flags]`. */
@Command({
  name: 'emulator',
  description: 'Start the local Key Vault (development and tests only); --help lists its flags',
  options: { isDefault: false },
  argsDescription: { flags: 'the emulator flags, e.g. --port 8443 --data-dir ./data/vault' },
  arguments: '[flags...]',
})
export class EmulatorCommand extends CommandRunner {
  async run(args: string[]): Promise<void> {
    await runEmulatorCli(args);
  }
}
