import { BadRequestException, ConflictException, Controller, Get, HttpException, Module, Post, ServiceUnavailableException, UnauthorizedException, UnprocessableEntityException } from '@nestjs/common';
import { ThrottlerException } from '@nestjs/throttler';
import { APP_FILTER, NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { RestError, createHttpHeaders, createPipelineRequest } from '@azure/core-rest-pipeline';
import pg from 'pg';
import { QueryFailedError } from 'typeorm';
import { DatabaseUnresponsiveError } from '@app/common';
import { CredentialValueMissingError } from '@app/credentials';
import { KeyVaultError, KeyVaultErrorCode } from '@app/key-vault';
import { HOST_APP_OPTIONS, hostAdapter } from '../bootstrap';
import { loadAppConfig } from '../config/app.config';
import { HOST_LOG, HostLogger } from '../logging/host-logger';
import { createHostLog } from '../logging/logging.options';
import { AllExceptionsFilter, isDatabaseUnavailable } from './all-exceptions.filter';
import { MissingScopeException } from './host-errors';

const TENANT = 'tenant-7c1e94d2';
/** A secret name as the credentials lib makes them: it carries the tenant id. */
const SECRET_NAME = `cv-${TENANT}-github-prod-api-key-g0`;
/** What Azure's text may echo of a request: a value. */
const VALUE_MARKER = 'zq9-VALUE-MARKER-41f';
const VAULT_REQUEST_ID = '3f2a9c1e-5b7d-4e8f-a1c2-9d8e7f6a5b4c';
const CLIENT_REQUEST_ID = '0b1c2d3e-4f50-4a6b-8c7d-e8f9a0b1c2d3';

/** A RestError as the SDK throws it, its message naming the secret and echoing the request. */
function azureError(status: number, code: string): RestError {
  const request = createPipelineRequest({ url: `https://v.vault.azure.net/secrets/${SECRET_NAME}`, requestId: CLIENT_REQUEST_ID });
  return new RestError(`(${code}) Operation on secret ${SECRET_NAME} failed; request body: {"value":"${VALUE_MARKER}"}`, {
    statusCode: status,
    code,
    request,
    response: { status, headers: createHttpHeaders({ 'x-ms-request-id': VAULT_REQUEST_ID }), request },
  });
}

/** The KeyVaultError the lib's mapper makes of a 503 (its message never quotes Azure nor the name). */
const vaultUnavailable = () =>
  new KeyVaultError(KeyVaultErrorCode.SERVICE_UNAVAILABLE, 'Reading the secret failed: SERVICE_UNAVAILABLE (HTTP 503 ServiceUnavailable); retry later', {
    operation: 'getSecret',
    secretName: SECRET_NAME,
    statusCode: 503,
    azureCode: 'ServiceUnavailable',
    cause: azureError(503, 'ServiceUnavailable'),
  });

/** What is left of the break of the open breaker `GET /fail/circuit` reports (ms). */
let circuitLeftMs = 0;

@Controller('fail')
class FailingController {
  @Get('vault')
  vault(): never {
    throw vaultUnavailable();
  }

  /** A typed error whose own message names the secret, over a 404 from the vault. */
  @Get('missing')
  missing(): never {
    const notFound = new KeyVaultError(KeyVaultErrorCode.KEY_NOT_FOUND, 'Reading the secret failed: KEY_NOT_FOUND (HTTP 404 SecretNotFound; no secret of that name or version)', {
      operation: 'getSecret',
      secretName: SECRET_NAME,
      statusCode: 404,
      azureCode: 'SecretNotFound',
      cause: azureError(404, 'SecretNotFound'),
    });
    throw new CredentialValueMissingError(`secret ${SECRET_NAME} is missing from the vault`, { cause: notFound });
  }

  /** PostgreSQL ended our connection (a failover, pg_terminate_backend), as TypeORM reports it. */
  @Get('db')
  db(): never {
    throw new QueryFailedError('SELECT 1', [], Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }));
  }

  /**
   * A query given to a pg client whose connection had already failed (reset, ended by PostgreSQL while idle in a
   * transaction, a protocol error): pg refuses it unsent, as TypeORM reports it when the error event came between its
   * released check and the query.
   */
  @Get('db-not-queryable')
  dbNotQueryable(): never {
    throw new QueryFailedError('SELECT 1', [], new Error('Client has encountered a connection error and is not queryable'));
  }

  /**
   * A query given to a pg client our side had ended (the DataSource destroyed at shutdown while the query was on its
   * way): pg's own refusal, from a real client, as TypeORM reports it.
   */
  @Get('db-client-closed')
  async dbClientClosed(): Promise<never> {
    const client = new pg.Client();
    await client.end();
    try {
      await client.query('SELECT 1');
    } catch (e) {
      throw new QueryFailedError('SELECT 1', [], e as Error);
    }
    throw new Error('pg sent a query on a client that was ended');
  }

  /**
   * A request's query asking the pool for a client after shutdown ended it (the DataSource destroyed as the request
   * came in): pg-pool's own refusal, from a real pool, passed on unwrapped as TypeORM's query runner does from its
   * connect.
   */
  @Get('db-pool-ended')
  async dbPoolEnded(): Promise<never> {
    const pool = new pg.Pool();
    await pool.end();
    const client = await pool.connect();
    client.release();
    throw new Error('pg-pool handed out a client after it was ended');
  }

  /** PostgreSQL refused a new session (it is starting up, in recovery or shutting down): no session was lost. */
  @Get('db-starting')
  dbStarting(): never {
    throw Object.assign(new Error('the database system is starting up'), { code: '57P03' });
  }

  /** A query PostgreSQL never answered: the host's deadline closed its connection (the typed error under TypeORM's). */
  @Get('db-unresponsive')
  dbUnresponsive(): never {
    throw new QueryFailedError('SELECT 1', [], new DatabaseUnresponsiveError(40_000));
  }

  /** PostgreSQL cancelled a statement past its statement timeout (or a lock wait past lock_timeout). */
  @Get('db-timeout')
  dbTimeout(): never {
    throw new QueryFailedError('SELECT 1', [], Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }));
  }

  /** The vault client's breaker open, its break ending `circuitLeftMs` from now (0: it ended as the call was refused). */
  @Get('circuit')
  circuit(): never {
    throw new KeyVaultError(KeyVaultErrorCode.CIRCUIT_OPEN, 'calls fail fast', { operation: 'getSecret', retryAfterMs: circuitLeftMs });
  }

  /** A query the database refused for itself: still ours to fix. */
  @Get('sql')
  sql(): never {
    throw new QueryFailedError('SELECT nope', [], Object.assign(new Error('column "nope" does not exist'), { code: '42703' }));
  }

  /** Refusals raised as Nest's HttpExceptions, as the validation pipes, the auth guard and the rate limit raise them. */
  @Get('validation')
  validation(): never {
    throw new BadRequestException(['name must be a string']);
  }

  @Get('unauthenticated')
  unauthenticated(): never {
    throw new UnauthorizedException('invalid API key');
  }

  @Get('scope')
  scope(): never {
    throw new MissingScopeException('missing scope: keys:read');
  }

  /** A 403 of a Fastify plugin (the static files' for `/docs/../x`), as Nest's adapter maps it: not the guard's. */
  @Get('plugin-forbidden')
  pluginForbidden(): never {
    throw new HttpException('Forbidden', 403, { cause: Object.assign(new Error('Forbidden'), { status: 403, statusCode: 403, expose: true }) });
  }

  /** Statuses the host has no code of its own for. */
  @Get('conflict')
  conflict(): never {
    throw new ConflictException('already there');
  }

  @Get('unprocessable')
  unprocessable(): never {
    throw new UnprocessableEntityException('cannot do that');
  }

  /** A 503 that is not the health report. */
  @Get('unavailable')
  unavailable(): never {
    throw new ServiceUnavailableException('not now');
  }

  @Get('throttled')
  throttled(): never {
    throw new ThrottlerException('too many requests');
  }

  /** A route Fastify reads a body for (its own JSON parser here): too large is its 413, an unknown type its 415. */
  @Post('body')
  body(): string {
    return 'ok';
  }

  /** A bug whose message quotes data. */
  @Get('bug')
  bug(): never {
    throw new TypeError(`cannot read "${VALUE_MARKER}" of ${SECRET_NAME}`);
  }
}

/** FailingController behind the host's adapter and filter, over real HTTP, its log lines written to `write`. */
async function startFailingApp(level: string, write: (line: string) => void): Promise<{ app: NestFastifyApplication; baseUrl: string }> {
  const config = loadAppConfig({ NODE_ENV: 'test', LOG_LEVEL: level });
  @Module({
    controllers: [FailingController],
    providers: [{ provide: HOST_LOG, useValue: createHostLog(config, { write }) }, HostLogger, { provide: APP_FILTER, useClass: AllExceptionsFilter }],
  })
  class TestModule {}
  const app = await NestFactory.create<NestFastifyApplication>(TestModule, hostAdapter(), HOST_APP_OPTIONS);
  app.useLogger(app.get(HostLogger));
  // Real HTTP (light-my-request's inject loads an ESM-only package jest cannot require).
  await app.listen(0, '127.0.0.1');
  return { app, baseUrl: (await app.getUrl()).replace('[::1]', '127.0.0.1') };
}

describe('AllExceptionsFilter: the 5xx log line', () => {
  const logs: string[] = [];
  let app: NestFastifyApplication;
  let baseUrl: string;

  beforeAll(async () => {
    ({ app, baseUrl } = await startFailingApp('info', (line) => void logs.push(line)));
  });

  afterAll(async () => {
    await app?.close();
  });

  beforeEach(() => {
    logs.length = 0;
  });

  async function fail(path: string, requestId: string) {
    const res = await fetch(`${baseUrl}${path}`, { headers: { 'x-request-id': requestId } });
    const text = await res.text();
    const lines = logs.filter((l) => l.includes('Request failed'));
    expect(lines).toHaveLength(1);
    return { status: res.status, text, body: JSON.parse(text) as Record<string, unknown>, raw: logs.join(''), line: JSON.parse(lines[0]) as Record<string, any> };
  }

  it('answers 503 with Retry-After when the database connection is lost or refused (a 500 is a fault of ours), and 500 for a query the database refused', async () => {
    const lost = await fetch(`${baseUrl}/fail/db`);
    expect(lost.status).toBe(503);
    expect(lost.headers.get('retry-after')).toBe('1');
    expect(await lost.json()).toMatchObject({
      statusCode: 503,
      code: 6009,
      codeName: 'DATABASE_CONNECTION_LOST',
      message: 'The database connection was lost while a query ran: retry',
      errorId: expect.any(String),
    });
    expect((await fetch(`${baseUrl}/fail/sql`)).status).toBe(500);
    // The session was lost before this query was sent: the same code, so a client retries (on a new connection).
    const unsent = await fetch(`${baseUrl}/fail/db-not-queryable`);
    expect([unsent.status, unsent.headers.get('retry-after')]).toEqual([503, '1']);
    expect(await unsent.json()).toMatchObject({ code: 6009, codeName: 'DATABASE_CONNECTION_LOST' });
    // Our own client, ended while the query was on its way (shutdown): refused unsent, the same code.
    const closed = await fetch(`${baseUrl}/fail/db-client-closed`);
    expect([closed.status, closed.headers.get('retry-after')]).toEqual([503, '1']);
    expect(await closed.json()).toMatchObject({ code: 6009, codeName: 'DATABASE_CONNECTION_LOST' });
    // The pool ended by shutdown as the request came in: no session was lost, but none can be had here — the same
    // 503 and code, so a load balancer retries on another replica (a shutdown race, not a fault of ours).
    const poolEnded = await fetch(`${baseUrl}/fail/db-pool-ended`);
    expect([poolEnded.status, poolEnded.headers.get('retry-after')]).toEqual([503, '1']);
    expect(await poolEnded.json()).toMatchObject({ code: 6009, codeName: 'DATABASE_CONNECTION_LOST' });
    // A refused connection is not a lost one: the untyped 503 (the commit that added 6009 keeps it for refusals).
    const refused = await fetch(`${baseUrl}/fail/db-starting`);
    expect([refused.status, refused.headers.get('retry-after')]).toEqual([503, '1']);
    expect(await refused.json()).toMatchObject({ message: 'the database is unavailable: retry later' });
    for (const e of [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }), new Error('Connection terminated unexpectedly'), { driverError: { code: '08006' } }, new Error('Client has encountered a connection error and is not queryable'), new Error('Client was closed and is not queryable'), new Error('Cannot use a pool after calling end on the pool')]) {
      expect(isDatabaseUnavailable(e)).toBe(true);
    }
    expect(isDatabaseUnavailable(new Error('Connection terminated unexpectedly by the user: value=abc'))).toBe(false);
  });

  it('answers an open circuit with Retry-After in whole seconds rounded up, never below 1 (a break that just ended included)', async () => {
    const answers: Record<number, string | null> = {};
    for (const ms of [0, 1, 999, 1000, 1001, 4500]) {
      circuitLeftMs = ms;
      const res = await fetch(`${baseUrl}/fail/circuit`);
      expect(((await res.json()) as { codeName: string }).codeName).toBe('CIRCUIT_OPEN');
      answers[ms] = res.headers.get('retry-after');
    }
    expect(answers).toEqual({ 0: '1', 1: '1', 999: '1', 1000: '1', 1001: '2', 4500: '5' });
  });

  it('answers 503 with its stable code when PostgreSQL did not answer within the deadline, and 503 when it cancelled a statement past its timeout', async () => {
    const unresponsive = await fetch(`${baseUrl}/fail/db-unresponsive`);
    expect(unresponsive.status).toBe(503);
    expect(unresponsive.headers.get('retry-after')).toBe('1');
    expect(await unresponsive.json()).toMatchObject({ statusCode: 503, code: 6007, codeName: 'DATABASE_UNRESPONSIVE', errorId: expect.any(String) });
    const cancelled = await fetch(`${baseUrl}/fail/db-timeout`);
    expect(cancelled.status).toBe(503);
    expect(cancelled.headers.get('retry-after')).toBe('1');
  });

  it('logs the codes, statuses and request ids of a vault failure, never the secret name nor Azure text', async () => {
    const { status, text, body, raw, line } = await fail('/fail/vault', 'req-vault-1');

    expect(status).toBe(503);
    expect(body).toMatchObject({ codeName: 'SERVICE_UNAVAILABLE', requestId: 'req-vault-1' });
    expect(line).toMatchObject({
      level: 50,
      errorId: body.errorId,
      requestId: 'req-vault-1',
      statusCode: 503,
      err: {
        name: 'KeyVaultError',
        code: KeyVaultErrorCode.SERVICE_UNAVAILABLE,
        codeName: 'SERVICE_UNAVAILABLE',
        operation: 'getSecret',
        vaultStatus: 503,
        azureCode: 'ServiceUnavailable',
        cause: { name: 'RestError', statusCode: 503, code: 'ServiceUnavailable', vaultRequestId: VAULT_REQUEST_ID, clientRequestId: CLIENT_REQUEST_ID },
      },
    });
    // Typed and Azure errors are described by their fields: no message, no stack.
    expect(line.err.message).toBeUndefined();
    expect(line.err.stack).toBeUndefined();
    expect(line.err.cause.stack).toBeUndefined();
    for (const secret of [SECRET_NAME, TENANT, VALUE_MARKER, 'request body']) {
      expect(raw).not.toContain(secret);
      expect(text).not.toContain(secret);
    }
  });

  it('describes every error of the chain without their messages', async () => {
    const { status, raw, line } = await fail('/fail/missing', 'req-missing-1');

    expect(status).toBe(500);
    expect(line.err).toMatchObject({
      name: 'CredentialValueMissingError',
      codeName: 'VALUE_MISSING',
      cause: { name: 'KeyVaultError', codeName: 'KEY_NOT_FOUND', vaultStatus: 404, azureCode: 'SecretNotFound', cause: { name: 'RestError', code: 'SecretNotFound' } },
    });
    expect(line.requestId).toBe('req-missing-1');
    for (const secret of [SECRET_NAME, TENANT, VALUE_MARKER]) expect(raw).not.toContain(secret);
  });

  it("keeps a bug's stack frames, not its message line", async () => {
    const { status, body, raw, line } = await fail('/fail/bug', 'req-bug-1');

    expect(status).toBe(500);
    expect(body.message).toBe('Internal server error');
    expect(line.err.name).toBe('TypeError');
    expect(line.err.stack).toMatch(/^at .*all-exceptions\.filter\.spec\.ts:\d+/);
    for (const secret of [SECRET_NAME, TENANT, VALUE_MARKER, 'cannot read']) expect(raw).not.toContain(secret);
  });
});

describe('AllExceptionsFilter: every refusal carries a stable code', () => {
  let app: NestFastifyApplication;
  let baseUrl: string;

  beforeAll(async () => {
    ({ app, baseUrl } = await startFailingApp('fatal', () => undefined));
  });

  afterAll(async () => {
    await app?.close();
  });

  const answer = async (path: string, init?: RequestInit) => {
    const res = await fetch(`${baseUrl}${path}`, init);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const post = (contentType: string, body: string) => ({ method: 'POST', headers: { 'content-type': contentType }, body });

  it.each([
    ['a failed validation', '/fail/validation', undefined, 400, 'BAD_REQUEST', ['name must be a string'], 90001, 'VALIDATION_FAILED'],
    ['no valid credentials', '/fail/unauthenticated', undefined, 401, 'UNAUTHORIZED', 'invalid API key', 90004, 'UNAUTHENTICATED'],
    ['a missing scope', '/fail/scope', undefined, 403, 'FORBIDDEN', 'missing scope: keys:read', 90005, 'MISSING_SCOPE'],
    ['no route', '/nowhere?x=1', undefined, 404, 'NOT_FOUND', 'no route matches this method and path', 90006, 'ROUTE_NOT_FOUND'],
    ['a body past the limit', '/fail/body', post('application/json', JSON.stringify({ pad: 'a'.repeat(300 * 1024) })), 413, 'PAYLOAD_TOO_LARGE', expect.any(String), 90009, 'BODY_TOO_LARGE'],
    ['a body of another type', '/fail/body', post('application/xml', '<a/>'), 415, 'UNSUPPORTED_MEDIA_TYPE', expect.any(String), 90011, 'UNSUPPORTED_MEDIA_TYPE'],
    ['the rate limit', '/fail/throttled', undefined, 429, 'TOO_MANY_REQUESTS', 'too many requests', 90013, 'RATE_LIMIT_EXCEEDED'],
    ['an unreachable database', '/fail/db-starting', undefined, 503, 'SERVICE_UNAVAILABLE', 'the database is unavailable: retry later', 90015, 'DATABASE_UNAVAILABLE'],
    ['a bug', '/fail/bug', undefined, 500, 'INTERNAL_SERVER_ERROR', 'Internal server error', 90016, 'INTERNAL'],
    // Statuses without a host code of their own (or not the host's refusal of that status): the generic one, never none.
    ['a plugin\'s 403', '/fail/plugin-forbidden', undefined, 403, 'FORBIDDEN', 'Forbidden', 90017, 'HTTP_ERROR'],
    ['a 409 HttpException', '/fail/conflict', undefined, 409, 'CONFLICT', 'already there', 90017, 'HTTP_ERROR'],
    ['a 422 HttpException', '/fail/unprocessable', undefined, 422, 'UNPROCESSABLE_ENTITY', 'cannot do that', 90017, 'HTTP_ERROR'],
    ['a 503 that is not the health report', '/fail/unavailable', undefined, 503, 'SERVICE_UNAVAILABLE', 'not now', 90017, 'HTTP_ERROR'],
  ] as const)('%s: its status, error and message as before, plus the host code', async (_what, path, init, statusCode, error, message, code, codeName) => {
    const { status, body } = await answer(path, init as RequestInit | undefined);
    expect(status).toBe(statusCode);
    expect(body).toMatchObject({ statusCode, error, message, code, codeName, requestId: expect.any(String) });
  });

  it("keeps a typed lib error's own code", async () => {
    expect((await answer('/fail/db-unresponsive')).body).toMatchObject({ code: 6007, codeName: 'DATABASE_UNRESPONSIVE' });
  });
});
