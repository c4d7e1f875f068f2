import { DynamicModule, Global, Inject, Injectable, LoggerService, Module } from '@nestjs/common';
import type { DestinationStream, Level, Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '../config/app.config';
import { errorLogFields } from '../http/error-log-fields';
import { createHostLog } from './logging.options';
import { currentRequestLogFields } from './request-log';

/** The host's root pino logger (one per host): request lines and Nest's own lines go through it. */
export const HOST_LOG = Symbol('HOST_LOG');

/**
 * Nest's `Logger` calls as pino lines: `context` is the logger's name, an object first argument is
 * merged into the line, and a line written while a request is served carries the request's `req`
 * {id, method, url}, as its request line does. Errors are described by their fields
 * (`errorLogFields`), never their message: an Error argument, and a call carrying stack text
 * (`error(message, stack)`), whose message is withheld. Ordinary lines keep their text.
 */
@Injectable()
export class HostLogger implements LoggerService {
  constructor(@Inject(HOST_LOG) private readonly root: Logger) {}

  verbose(message: unknown, ...params: unknown[]): void {
    this.write('trace', message, params);
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, params);
  }
  log(message: unknown, ...params: unknown[]): void {
    this.write('info', message, params);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, params);
  }
  error(message: unknown, ...params: unknown[]): void {
    const held = RETHROWN_BY_NEST.has(params.at(-1)) ? startHolds.get(this.root) : undefined;
    if (held) held.push({ about: message, write: () => this.write('error', message, params) });
    else this.write('error', message, params);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params);
  }

  private write(level: Level, message: unknown, params: unknown[]): void {
    if (!this.root.isLevelEnabled(level)) return;
    const line: Record<string, unknown> = {};
    const req = currentRequestLogFields();
    if (req) line.req = req;
    // Nest appends the logger's context as the last argument, except from a logger without one:
    // static `Logger.error(message, stack)` ends with the stack.
    let rest = params;
    if (params.length > 0 && !isStackText(params[params.length - 1])) {
      line.context = params[params.length - 1];
      rest = params.slice(0, -1);
    }
    // error(message, stack) (Nest's lifecycle hooks and shutdown, TypeORM, event handlers), or a
    // stack as the message: the message is, or embeds, the error's own; the stack's first line repeats it.
    const stack = rest.find(isStackText) ?? (isStackText(message) ? message : undefined);
    if (stack !== undefined) rest = rest.filter((p) => !isStackText(p));
    if (message instanceof Error) line.err = errorLogFields(message);
    else if (stack !== undefined) line.err = errorLogFields(errorOfStack(stack, message));
    if (typeof message === 'object' && message !== null) {
      // An Error by its fields only (class, codes, our own stack frames): its message may be Azure's text or quote data.
      if (!(message instanceof Error)) Object.assign(line, message);
      this.root[level](line, ...(rest as [string?]));
    } else if (stack !== undefined) {
      this.root[level](line, MESSAGE_WITHHELD);
    } else {
      this.root[level](line, String(message), ...rest);
    }
  }
}

/**
 * Contexts of Nest's error lines about an error it then throws on to its caller (the host's `abortOnError: false`): the
 * exception zone's dump of a failed start (`ExceptionHandler`, the error itself) and a failed listen
 * (`NestApplication`, the error's `toString()`). Held while the host starts (`holdStartErrorLines`).
 */
const RETHROWN_BY_NEST = new Set<unknown>(['ExceptionHandler', 'NestApplication']);

interface HeldLine {
  about: unknown;
  write: () => void;
}

/** The lines held per root log while `createApp` starts a host on it (every HostLogger of a host shares its root). */
const startHolds = new WeakMap<Logger, HeldLine[]>();

/**
 * Holds the `ExceptionHandler` and `NestApplication` error lines of the host logging to `root` until its start ends:
 * `release(failure)` drops those about `failure` — the error the start throws to its caller, which logs it once
 * (main.ts: `Failed to start`), so they would only repeat it first with a stack — and writes every other;
 * `release()` after a start that succeeded writes them all. Outside a start those lines are written as they come.
 */
export function holdStartErrorLines(root: Logger): { release(failure?: unknown): void } {
  const held: HeldLine[] = [];
  startHolds.set(root, held);
  return {
    release(failure?: unknown) {
      if (startHolds.get(root) === held) startHolds.delete(root);
      for (const line of held) if (failure === undefined || !isAbout(line.about, failure)) line.write();
    },
  };
}

/** Whether a held line is Nest's report of `failure`: the error itself, or its `toString()` (listen's line). */
function isAbout(message: unknown, failure: unknown): boolean {
  return message === failure || (typeof message === 'string' && failure instanceof Error && message === String(failure));
}

const MESSAGE_WITHHELD = 'error with a stack (message withheld: it may quote data; see err)';

/** Stack text (`\n    at f (file:1:2)`): how Nest tells a stack argument, though a frame without `:line:col` counts too. */
function isStackText(v: unknown): v is string {
  return typeof v === 'string' && /\n[ \t]+at \S/.test(v);
}

/**
 * An Error standing for stack text, for errorLogFields: the class named by its first line, and its
 * frames. The message is only there so that a stack starting with it is cut after it (it is not logged).
 */
function errorOfStack(stack: string, message: unknown): Error {
  const e = new Error(typeof message === 'string' ? message : '');
  // `Error: …`, `QueryFailedError: …`, Node's `AggregateError [ECONNREFUSED]: …` (both addresses of localhost refused).
  e.name = /^([A-Za-z_$][\w$]*)(?: \[[A-Z0-9_]+\])?(?::|\n)/.exec(stack)?.[1] ?? 'Error';
  e.stack = stack;
  // The system error behind a connection failure (TypeORM's "Unable to connect… Retrying" carries only the
  // stack): a known code from the first line, never its text (it names hosts and may quote data).
  const code = stack.split('\n', 1)[0].match(SYSTEM_ERROR_CODES)?.[0];
  if (code) (e as { code?: string }).code = code;
  return e;
}

/** Node's system error codes of a failed connection or file access: what an operator needs from a stack's first line. */
const SYSTEM_ERROR_CODES =
  /\b(?:ECONNREFUSED|ECONNRESET|ECONNABORTED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPIPE|EPROTO|EACCES|EPERM|ENOENT|ENOSPC|EROFS|EMFILE|EADDRINUSE|EBUSY)\b/;

/**
 * Provides HOST_LOG and HostLogger everywhere (app.useLogger takes the HostLogger): `log` when given
 * (createApp builds it first, so that Nest's own start-up lines are JSON too), else one built from the config.
 */
@Global()
@Module({})
export class HostLoggingModule {
  static forRoot(source: { log?: Logger; destination?: DestinationStream } = {}): DynamicModule {
    const root = source.log
      ? { provide: HOST_LOG, useValue: source.log }
      : { provide: HOST_LOG, inject: [APP_CONFIG], useFactory: (c: AppConfig) => createHostLog(c, source.destination) };
    return { module: HostLoggingModule, providers: [root, HostLogger], exports: [HOST_LOG, HostLogger] };
  }
}

/**
 * The process's start and stop lines (listening, draining, failed to start): written at `info`
 * whatever LOG_LEVEL says (orchestration and people look for them), except `silent`.
 */
export function lifecycleLog(root: Logger): Logger {
  return root.level === 'silent' ? root : root.child({}, { level: 'info' });
}
