import { BadRequestException, Logger, UnauthorizedException, type ArgumentsHost } from '@nestjs/common';
import { Metadata, status as GrpcCode } from '@grpc/grpc-js';
import { RestError, createHttpHeaders, createPipelineRequest } from '@azure/core-rest-pipeline';
import { QueryFailedError } from 'typeorm';
import { DatabaseUnresponsiveError } from '@app/common';
import { CredentialValueMissingError } from '@app/credentials';
import { KeyVaultError, KeyVaultErrorCode } from '@app/key-vault';
import { KeysError, KeysErrorCode } from '@app/keys';
import { loadAppConfig } from '../../config/app.config';
import { HostLogger } from '../../logging/host-logger';
import { createHostLog } from '../../logging/logging.options';
import { MissingScopeException } from '../../http/host-errors';
import { recordGrpcCall } from './grpc-call-observer';
import { GrpcRateLimitedException } from './grpc-auth.guard';
import { GrpcExceptionFilter } from './grpc-exception.filter';
import { ERROR_CODE_TRAILER, ERROR_ID_TRAILER, STATUS_DETAILS_TRAILER } from './grpc-status';

describe('GrpcExceptionFilter', () => {
  const filter = new GrpcExceptionFilter();
  beforeAll(() => jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined));
  afterAll(() => jest.restoreAllMocks());

  it('keeps a typed error: its status, message and stable code (trailer and details)', () => {
    const s = filter.toStatus(new KeysError(KeysErrorCode.KEY_NOT_USABLE, 'The key version is disabled'));
    expect(s).toMatchObject({ code: GrpcCode.FAILED_PRECONDITION, details: 'The key version is disabled' });
    expect(s.metadata.get(ERROR_CODE_TRAILER)).toEqual(['10004']);
    expect(s.metadata.get(STATUS_DETAILS_TRAILER)[0]).toBeInstanceOf(Buffer);
    expect(s.metadata.get(ERROR_ID_TRAILER)).toEqual([]);
  });

  it("names a request's fields as keys.proto does, not as the lib does (page_size, not maxPageSize)", () => {
    const field = (name: string, message: string) => filter.toStatus(new KeysError(KeysErrorCode.KEYS_VALIDATION, message, name)).details;
    expect(field('maxPageSize', 'maxPageSize must be an integer from 1 to 25')).toBe('page_size must be an integer from 1 to 25');
    expect(field('continuationToken', 'continuationToken is not a token of this list')).toBe('page_token is not a token of this list');
    expect(field('type', "type must be 'RSA' or 'EC'")).toBe("key_type must be 'RSA' or 'EC'");
    expect(field('keyOps', 'keyOps must be a non-empty list of sign, verify')).toBe('key_ops must be a non-empty list of sign, verify');
    expect(field('expiresOn', 'expiresOn must be a valid Date')).toBe('expires_at must be a valid Date');
    // Fields named alike, and errors that are not about a request field, keep their words.
    expect(field('digest', 'ES256 signs a 32-byte digest (SHA-256 of the data)')).toBe('ES256 signs a 32-byte digest (SHA-256 of the data)');
    expect(filter.toStatus(new KeysError(KeysErrorCode.KEY_TYPE_MISMATCH, 'RS256 needs an RSA key; this key type is EC')).details).toBe('RS256 needs an RSA key; this key type is EC');
  });

  it('names the vault throttling RESOURCE_EXHAUSTED and a vault timeout DEADLINE_EXCEEDED', () => {
    expect(filter.toStatus(new KeyVaultError(KeyVaultErrorCode.RATE_LIMITED, 'm', { operation: 'getSecret', retryAfterMs: 2000 })).code).toBe(GrpcCode.RESOURCE_EXHAUSTED);
    expect(filter.toStatus(new KeyVaultError(KeyVaultErrorCode.TIMEOUT, 'm', { operation: 'getSecret' })).code).toBe(GrpcCode.DEADLINE_EXCEEDED);
  });

  it('answers a database failure UNAVAILABLE with its code (a lost session, a deadline), as the HTTP side answers 503, never INTERNAL', () => {
    const terminated = Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01', severity: 'FATAL' });
    const lost = filter.toStatus(new QueryFailedError('SELECT pg_advisory_lock($1::bigint)', [1], terminated));
    expect(lost).toMatchObject({ code: GrpcCode.UNAVAILABLE, details: 'The database connection was lost while a query ran: retry' });
    expect(lost.metadata.get(ERROR_CODE_TRAILER)).toEqual(['6009']);
    expect(filter.toStatus(terminated).metadata.get(ERROR_CODE_TRAILER)).toEqual(['6009']);
    const unresponsive = filter.toStatus(new QueryFailedError('SELECT 1', [], new DatabaseUnresponsiveError(40_000)));
    expect(unresponsive.metadata.get(ERROR_CODE_TRAILER)).toEqual(['6007']);
    const refused = filter.toStatus(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }));
    expect(refused).toMatchObject({ code: GrpcCode.UNAVAILABLE, details: 'the database is unavailable: retry later' });
    expect(refused.metadata.get(ERROR_ID_TRAILER)).toEqual([]);
  });

  it("joins validation messages of a host refusal, with the host's code as over HTTP (trailer, and reason in the details)", () => {
    const s = filter.toStatus(new BadRequestException(['a must be x', 'b must be y']));
    expect(s).toMatchObject({ code: GrpcCode.INVALID_ARGUMENT, details: 'a must be x; b must be y' });
    expect(s.metadata.get(ERROR_CODE_TRAILER)).toEqual(['90001']);
    expect(Buffer.from(s.metadata.get(STATUS_DETAILS_TRAILER)[0] as Buffer).toString('latin1')).toContain('VALIDATION_FAILED');
    const refusals = [new UnauthorizedException('invalid API key'), new MissingScopeException('missing scope: keys:write'), new GrpcRateLimitedException(1000)];
    expect(refusals.map((e) => [filter.toStatus(e).code, filter.toStatus(e).metadata.get(ERROR_CODE_TRAILER)])).toEqual([
      [GrpcCode.UNAUTHENTICATED, ['90004']],
      [GrpcCode.PERMISSION_DENIED, ['90005']],
      [GrpcCode.RESOURCE_EXHAUSTED, ['90013']],
    ]);
  });

  it('gives an unreachable database and an unknown error the host codes HTTP gives them', () => {
    const refused = filter.toStatus(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }));
    expect(refused.metadata.get(ERROR_CODE_TRAILER)).toEqual(['90015']);
    expect(filter.toStatus(new Error('boom')).metadata.get(ERROR_CODE_TRAILER)).toEqual(['90016']);
  });

  it('never sends the message of an unknown error: INTERNAL with an error id that is in the log', () => {
    const s = filter.toStatus(new Error('connection string postgres://user:hunter2@db'));
    expect(s).toMatchObject({ code: GrpcCode.INTERNAL, details: 'Internal server error' });
    const [errorId] = s.metadata.get(ERROR_ID_TRAILER);
    expect(errorId).toMatch(/^[0-9a-f-]{36}$/);
    expect(Buffer.from(s.metadata.get(STATUS_DETAILS_TRAILER)[0] as Buffer).toString('latin1')).not.toContain('hunter2');
    expect(Logger.prototype.error).toHaveBeenCalledWith(expect.objectContaining({ errorId }), expect.stringContaining(String(errorId)));
  });
});

describe('GrpcExceptionFilter: the INTERNAL log line', () => {
  const TENANT = 'tenant-5b0d31c7';
  /** A secret name as the credentials lib makes them: it carries the tenant id. */
  const SECRET_NAME = `cv-${TENANT}-github-prod-api-key-g0`;
  /** What Azure's text may echo of a request: a value. */
  const VALUE_MARKER = 'zq9-GRPC-VALUE-MARKER-7a2';
  const lines: string[] = [];

  beforeAll(() => {
    const host = new HostLogger(createHostLog(loadAppConfig({ NODE_ENV: 'test', LOG_LEVEL: 'info' }), { write: (l: string) => void lines.push(l) }));
    Logger.overrideLogger(host);
  });
  afterAll(() => Logger.overrideLogger(new Logger()));
  beforeEach(() => (lines.length = 0));

  /** A typed 500 over the vault's 404 over Azure's RestError, each message naming the secret. */
  function missingValue(): CredentialValueMissingError {
    const request = createPipelineRequest({ url: `https://v.vault.azure.net/secrets/${SECRET_NAME}` });
    const azure = new RestError(`(SecretNotFound) Secret ${SECRET_NAME} not found; body {"value":"${VALUE_MARKER}"}`, {
      statusCode: 404,
      code: 'SecretNotFound',
      request,
      response: { status: 404, headers: createHttpHeaders({ 'x-ms-request-id': '3f2a9c1e-5b7d-4e8f-a1c2-9d8e7f6a5b4c' }), request },
    });
    const notFound = new KeyVaultError(KeyVaultErrorCode.KEY_NOT_FOUND, `Key Vault getSecret of ${SECRET_NAME} failed`, {
      operation: 'getSecret',
      secretName: SECRET_NAME,
      statusCode: 404,
      azureCode: 'SecretNotFound',
      cause: azure,
    });
    return new CredentialValueMissingError(`secret ${SECRET_NAME} is missing from the vault`, { cause: notFound });
  }

  it("names the call's method and request id, as its access line does", () => {
    const metadata = new Metadata();
    metadata.set('x-request-id', 'req-filter-1');
    recordGrpcCall(metadata);
    const host = { getArgByIndex: (i: number) => (i === 1 ? metadata : { getPath: () => '/credential_vault.keys.v1.KeysService/Sign' }) } as unknown as ArgumentsHost;
    new GrpcExceptionFilter().toStatus(new Error('boom'), host);
    expect(JSON.parse(lines[0])).toMatchObject({ level: 50, requestId: 'req-filter-1', method: '/credential_vault.keys.v1.KeysService/Sign' });
  });

  it('describes every error of the chain by its fields: codes and statuses, never a message', () => {
    const s = new GrpcExceptionFilter().toStatus(missingValue());

    expect(s.code).toBe(GrpcCode.INTERNAL);
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]) as Record<string, any>;
    expect(line).toMatchObject({
      level: 50,
      errorId: s.metadata.get(ERROR_ID_TRAILER)[0],
      err: {
        name: 'CredentialValueMissingError',
        codeName: 'VALUE_MISSING',
        cause: { name: 'KeyVaultError', codeName: 'KEY_NOT_FOUND', vaultStatus: 404, azureCode: 'SecretNotFound', cause: { name: 'RestError', code: 'SecretNotFound', statusCode: 404 } },
      },
    });
    expect(line.err.message).toBeUndefined();
    expect(line.err.stack).toBeUndefined();
    for (const secret of [SECRET_NAME, TENANT, VALUE_MARKER]) expect(lines[0]).not.toContain(secret);
  });

  it("keeps a bug's stack frames, not its message", () => {
    new GrpcExceptionFilter().toStatus(new TypeError(`cannot read "${VALUE_MARKER}" of ${SECRET_NAME}`));

    const line = JSON.parse(lines[0]) as Record<string, any>;
    expect(line.err.name).toBe('TypeError');
    expect(line.err.stack).toMatch(/^at .*grpc-exception\.filter\.spec\.ts:\d+/);
    for (const secret of [SECRET_NAME, TENANT, VALUE_MARKER, 'cannot read']) expect(lines[0]).not.toContain(secret);
  });
});
