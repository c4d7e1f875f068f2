import 'reflect-metadata';
import { CommandFactory } from 'nest-commander';
import { CliModule } from './cli.module';
import { withoutOptionValues } from './cli-output';

const HELP_CODES = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version']);

/** Operator commands: `npm run -s cli -- <command> --help`. */
async function main(): Promise<void> {
  await CommandFactory.run(CliModule, {
    logger: ['warn', 'error'],
    errorHandler: (e: Error & { code?: string }) => {
      if (e.code && HELP_CODES.has(e.code)) process.exit(0);
      // commander has printed its own parse errors already (unknown command or option, missing value).
      if (!e.code?.startsWith('commander.')) process.stderr.write(`${e.message}\n`);
      process.exit(1);
    },
    // commander's parse errors quote the argument: `unknown option '--value=<the secret>'`. The part after `=` stays out.
    outputConfiguration: { writeErr: (text: string) => void process.stderr.write(withoutOptionValues(text)) },
    // A command that throws has failed: a cron job or CI step must see it (nest-commander's default prints and exits 0).
    serviceErrorHandler: (e: Error) => {
      process.stderr.write(`${e.name && e.name !== 'Error' ? `${e.name}: ` : ''}${e.message}\n`);
      process.exit(1);
    },
  });
}

void main();
