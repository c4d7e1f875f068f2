import { ConsoleLogger } from '@nestjs/common';

/** `'--name=value'` quoted in a parse error, as `'--name=…'`: a value typed on the command line may be a secret. */
export function withoutOptionValues(text: string): string {
  return text.replace(/'(--?[A-Za-z0-9][\w-]*)=[^']*'/g, "'$1=…'");
}

/**
 * Nest's log for the application contexts the commands create: errors only, and not the exception handler's dump of a
 * failed start (a stack trace around the message): with `abortOnError: false` that error is thrown on to the command,
 * and the CLI's error handler prints its message alone (e.g. "stop the host first" when the embedded vault's port is taken).
 */
class CommandContextLogger extends ConsoleLogger {
  override error(message: unknown, ...rest: unknown[]): void {
    if (rest.at(-1) === 'ExceptionHandler') return;
    super.error(message, ...rest);
  }

  /**
   * The one `log` line a command prints: the migrations it applied (the schema's creation, `migrate`'s upgrade), as the
   * host logs them (`[Migrations] Applied n migrations: …`), on stderr: stdout is the command's output (piped into jq).
   */
  override log(message: unknown, ...rest: unknown[]): void {
    if (rest.at(-1) === 'Migrations') process.stderr.write(`[Migrations] ${String(message)}\n`);
  }
}

/** Options of every `NestFactory.createApplicationContext` a command makes: a failed start is the command's error. */
export const COMMAND_CONTEXT_OPTIONS = { logger: new CommandContextLogger({ logLevels: ['error'] }), abortOnError: false } as const;
