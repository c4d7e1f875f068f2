import { createConnection } from 'node:net';
import { Injectable, Logger, Module, OnModuleDestroy } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { loadAppConfig } from '../config/app.config';
import { holdStartErrorLines, HostLogger } from './host-logger';
import { createHostLog } from './logging.options';

const MARKER = 'cv-hl-MARKER-4f2a';

/** A database driver's error whose message quotes the row it refused. */
class QueryFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueryFailedError';
  }
}

@Injectable()
class FailingOnShutdown implements OnModuleDestroy {
  onModuleDestroy(): void {
    throw new QueryFailedError(`duplicate key value (tenant)=(${MARKER})`);
  }
}

@Module({ providers: [FailingOnShutdown] })
class ShutdownModule implements OnModuleDestroy {
  onModuleDestroy(): void {
    throw new TypeError(`cannot read "${MARKER}"`);
  }
}

@Module({})
class QuietModule {}

/** Nest's own calls reach the HostLogger as they do in the host (app.useLogger), written to memory. */
function hostLogger() {
  const lines: Record<string, any>[] = [];
  const root = createHostLog(loadAppConfig({ NODE_ENV: 'test', LOG_LEVEL: 'info' }), { write: (l: string) => void lines.push(JSON.parse(l)) });
  return { host: new HostLogger(root), lines, root };
}

/** One frame of this file: the stack's code locations are kept. */
const OUR_FRAME = expect.stringContaining('host-logger.spec.ts');
const WITHHELD = expect.stringContaining('message withheld');

describe('HostLogger', () => {
  afterEach(() => Logger.overrideLogger(false));

  it("writes an error thrown in a lifecycle hook by its class and frames, never its message (Nest's Logger.error(err, err.stack))", async () => {
    const { host, lines } = hostLogger();
    const app = await NestFactory.createApplicationContext(ShutdownModule, { logger: host });
    lines.length = 0;
    await app.close();
    const errors = lines.filter((l) => l.level === 50);
    expect(errors).toEqual([
      expect.objectContaining({ err: { name: 'QueryFailedError', stack: OUR_FRAME } }),
      expect.objectContaining({ err: { name: 'TypeError', stack: OUR_FRAME } }),
    ]);
    // The stack argument is not taken for the logger's context (it repeats the message).
    expect(errors.map((l) => l.context)).toEqual([undefined, undefined]);
    expect(JSON.stringify(lines)).not.toContain(MARKER);
  });

  it('withholds the message of an error(message, stack) call, whichever logger makes it, and keeps the class, frames and context', () => {
    const { host, lines } = hostLogger();
    Logger.overrideLogger(host);
    const e = new QueryFailedError(`duplicate key value (tenant)=(${MARKER})`);
    // TypeORM's close failure, an event handler's failure, Nest's shutdown failure, a bare stack.
    new Logger('TypeOrmModule').error(`Failed to close the "default" data source: ${e.message}`, e.stack);
    new Logger('EventSubscribersLoader').error(e.message, e.stack);
    Logger.error('Error during shutdown', e.stack, 'NestApplicationContext');
    host.error(e.stack, 'ExceptionsHandler');
    host.fatal(e.message, e.stack, 'Bootstrap');
    expect(lines.map((l) => [l.level, l.context])).toEqual([
      [50, 'TypeOrmModule'],
      [50, 'EventSubscribersLoader'],
      [50, 'NestApplicationContext'],
      [50, 'ExceptionsHandler'],
      [60, 'Bootstrap'],
    ]);
    for (const line of lines) expect(line).toMatchObject({ msg: WITHHELD, err: { name: 'QueryFailedError', stack: OUR_FRAME } });
    expect(JSON.stringify(lines)).not.toContain(MARKER);
  });

  it("keeps the system error code of TypeORM's connection retries (ECONNREFUSED…), never the text around it", async () => {
    const { host, lines } = hostLogger();
    // What TypeOrmModule logs while the database is down: a fixed text, and the connection error's stack.
    const refused = await new Promise<Error>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port: 9 }); // discard port: nothing listens
      socket.on('error', resolve);
    });
    const aggregate = new AggregateError([refused], '');
    aggregate.stack = `AggregateError [ECONNREFUSED]: \n    at internalConnectMultiple (node:net:1122:18)`;
    const unknown = new Error(`connect EWHATEVER ${MARKER}`);
    for (const e of [refused, aggregate, unknown]) host.error('Unable to connect to the database. Retrying (1)...', e.stack, 'TypeOrmModule');
    expect(lines.map((l) => l.err)).toEqual([
      expect.objectContaining({ name: 'Error', code: 'ECONNREFUSED' }),
      expect.objectContaining({ name: 'AggregateError', code: 'ECONNREFUSED' }),
      { name: 'Error', stack: OUR_FRAME },
    ]);
    expect(JSON.stringify(lines)).not.toContain(MARKER);
    expect(JSON.stringify(lines)).not.toContain('127.0.0.1');
  });

  it("keeps Nest's ordinary lines as they are: bootstrap, route mapping, an error line without a stack", async () => {
    const { host, lines } = hostLogger();
    const app = await NestFactory.createApplicationContext(QuietModule, { logger: host });
    Logger.log('Mapped {/v1/credentials, GET} route', 'RouterExplorer');
    new Logger('ServerRedis').error('Disconnected from Redis. No further reconnection attempts will be made.');
    Logger.error('Calling the "listen" in the preview mode is not supported.');
    host.error('Unable to connect to the database. Retrying (1)...', undefined, 'TypeOrmModule');
    await app.close();
    expect(lines.map((l) => [l.level, l.context, l.msg])).toEqual([
      [30, 'NestFactory', 'Starting Nest application...'],
      [30, 'InstanceLoader', 'QuietModule dependencies initialized'],
      [30, 'RouterExplorer', 'Mapped {/v1/credentials, GET} route'],
      [50, 'ServerRedis', 'Disconnected from Redis. No further reconnection attempts will be made.'],
      [50, undefined, 'Calling the "listen" in the preview mode is not supported.'],
      [50, 'TypeOrmModule', 'Unable to connect to the database. Retrying (1)...'],
    ]);
    expect(lines.filter((l) => l.err !== undefined)).toEqual([]);
  });

  it("writes the error lines of Nest's ExceptionHandler and NestApplication outside a start: only a failed start's own are left to its caller", () => {
    const { host, lines } = hostLogger();
    Logger.overrideLogger(host);
    new Logger('ExceptionHandler').error(new QueryFailedError(`duplicate key value (tenant)=(${MARKER})`));
    new Logger('NestApplication').error('Error: a later failure Nest reports here');
    expect(lines.map((l) => [l.level, l.context])).toEqual([
      [50, 'ExceptionHandler'],
      [50, 'NestApplication'],
    ]);
    expect(lines[0]).toMatchObject({ err: { name: 'QueryFailedError', stack: OUR_FRAME } });
    expect(JSON.stringify(lines)).not.toContain(MARKER);
  });

  it('while the host starts, drops the lines about the error the start fails with (its caller logs it once) and writes every other', () => {
    const { host, lines, root } = hostLogger();
    Logger.overrideLogger(host);
    const failure = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:3000'), { code: 'EADDRINUSE' });
    const hold = holdStartErrorLines(root);
    // What Nest logs of a failed start: the exception zone's dump of the error, and listen's `e.toString()`.
    new Logger('ExceptionHandler').error(failure);
    new Logger('NestApplication').error(failure.toString());
    // Error lines of those contexts about something else, and a line of another context.
    new Logger('ExceptionHandler').error(new TypeError('another error'));
    new Logger('NestApplication').error('Error: another failure');
    new Logger('RouterExplorer').log('Mapped {/v1/credentials, GET} route');
    hold.release(failure);
    new Logger('NestApplication').error(failure.toString()); // after the start: written
    expect(lines.map((l) => [l.level, l.context, l.err?.name ?? l.msg])).toEqual([
      [30, 'RouterExplorer', 'Mapped {/v1/credentials, GET} route'],
      [50, 'ExceptionHandler', 'TypeError'],
      [50, 'NestApplication', 'Error: another failure'],
      [50, 'NestApplication', failure.toString()],
    ]);

    // A start that succeeds writes whatever it held.
    lines.length = 0;
    const started = holdStartErrorLines(root);
    new Logger('NestApplication').error('Error: something Nest reported during a good start');
    expect(lines).toEqual([]);
    started.release();
    expect(lines.map((l) => [l.context, l.msg])).toEqual([['NestApplication', 'Error: something Nest reported during a good start']]);
  });
});
