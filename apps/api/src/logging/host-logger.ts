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
 * merged into the line (an Error becomes `err`, described by `errorLogFields`: never its message), and a line written while a request is served carries
 * the request's `req` {id, method, url}, as its request line does.
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
    this.write('error', message, params);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params);
  }

  private write(level: Level, message: unknown, params: unknown[]): void {
    if (!this.root.isLevelEnabled(level)) return;
    const line: Record<string, unknown> = {};
    const req = currentRequestLogFields();
    if (req) line.req = req;
    // Nest appends the logger's context as the last argument.
    let rest = params;
    if (params.length > 0) {
      line.context = params[params.length - 1];
      rest = params.slice(0, -1);
    }
    if (typeof message === 'object' && message !== null) {
      // An Error by its fields only (class, codes, our own stack frames): its message may be Azure's text or quote data.
      if (message instanceof Error) line.err = errorLogFields(message);
      else Object.assign(line, message);
      this.root[level](line, ...(rest as [string?]));
    } else if (level === 'error' && typeof message === 'string' && rest.length === 1 && typeof rest[0] === 'string' && /\n\s*at /.test(rest[0])) {
      // Nest's exception handlers call error(message, stack, context).
      const err = new Error(message);
      err.stack = rest[0];
      line.err = err;
      this.root[level](line);
    } else {
      this.root[level](line, String(message), ...rest);
    }
  }
}

/** Provides HOST_LOG and HostLogger everywhere (app.useLogger takes the HostLogger). */
@Global()
@Module({})
export class HostLoggingModule {
  static forRoot(destination?: DestinationStream): DynamicModule {
    return {
      module: HostLoggingModule,
      providers: [{ provide: HOST_LOG, inject: [APP_CONFIG], useFactory: (c: AppConfig) => createHostLog(c, destination) }, HostLogger],
      exports: [HOST_LOG, HostLogger],
    };
  }
}
