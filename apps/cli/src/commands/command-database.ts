import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { APP_CONFIG, databaseOptions, type AppConfig } from '@app/api-host';

/** A command could not open the host's database: says what it tried (type, host:port or file, the variable), never a password. */
export class CommandDatabaseUnreachableError extends Error {
  override readonly name = 'CommandDatabaseUnreachableError';
}

/** `…postgres database at host:port (DATABASE_URL)` or `…SQLite database file <path> (DATABASE_PATH)`: what was tried, without the URL's credentials. */
function whatWasTried(options: DataSourceOptions): string {
  if (options.type !== 'postgres') return `cannot open the SQLite database file ${String(options.database)} (DATABASE_PATH)`;
  try {
    const url = new URL(options.url ?? '');
    // libpq's forms: `?host=/run/postgresql` (a socket directory) and `?port=` override the authority.
    const host = url.searchParams.get('host') || url.hostname || 'localhost';
    const port = url.searchParams.get('port') || url.port || '5432';
    return `cannot connect to the postgres database at ${host}:${port} (DATABASE_URL)`;
  } catch {
    return 'cannot connect to the postgres database of DATABASE_URL';
  }
}

function passwordOf(options: DataSourceOptions): string | undefined {
  if (options.type !== 'postgres' || !options.url) return undefined;
  try {
    return decodeURIComponent(new URL(options.url).password) || undefined;
  } catch {
    return undefined;
  }
}

/** The driver's reason, one line: Node gives `localhost`'s two refused addresses as an AggregateError with no message. */
function reasonOf(e: unknown, password: string | undefined): string {
  const err = e as { message?: unknown; code?: unknown; errors?: unknown } | null | undefined;
  const nested = Array.isArray(err?.errors) ? err.errors.map((x: { message?: unknown }) => String(x?.message ?? '')).filter(Boolean) : [];
  const reason = (typeof err?.message === 'string' && err.message) || nested.join('; ') || (typeof err?.code === 'string' && err.code) || String(e);
  return password ? reason.split(password).join('…') : reason;
}

/**
 * The host's database for a command's application context. One attempt: Nest's TypeORM module otherwise retries 9
 * times, 3 s apart, logging each with a stack (~30 s of noise before the command fails); the host keeps that. A
 * failure to open the connection (refused, unknown host, DATABASE_CONNECT_TIMEOUT_MS without an answer, login
 * refused, a file SQLite cannot open) is one CommandDatabaseUnreachableError naming what was tried; a later failure
 * (a migration) stays as it is.
 */
export function commandDatabaseModule() {
  return TypeOrmModule.forRootAsync({
    inject: [APP_CONFIG],
    useFactory: (config: AppConfig) => ({ ...databaseOptions(config), toRetry: () => false }),
    dataSourceFactory: async (options) => {
      const dataSource = new DataSource(options!);
      // Only the driver's connect opens connections (TypeORM's initialize then builds metadata and runs migrations).
      const connect = dataSource.driver.connect.bind(dataSource.driver);
      dataSource.driver.connect = async () => {
        try {
          await connect();
        } catch (e) {
          throw new CommandDatabaseUnreachableError(`${whatWasTried(options!)}: ${reasonOf(e, passwordOf(options!))}`, { cause: e });
        }
      };
      return dataSource.initialize();
    },
  });
}
