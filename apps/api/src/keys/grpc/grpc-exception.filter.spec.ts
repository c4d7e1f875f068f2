import { BadRequestException, Logger } from '@nestjs/common';
import { status as GrpcCode } from '@grpc/grpc-js';
import { KeyVaultError, KeyVaultErrorCode } from '@app/key-vault';
import { KeysError, KeysErrorCode } from '@app/keys';
import { ERROR_CODE_TRAILER, ERROR_ID_TRAILER, GrpcExceptionFilter } from './grpc-exception.filter';
import { STATUS_DETAILS_TRAILER } from './grpc-status';

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

  it('names the vault throttling RESOURCE_EXHAUSTED and a vault timeout DEADLINE_EXCEEDED', () => {
    expect(filter.toStatus(new KeyVaultError(KeyVaultErrorCode.RATE_LIMITED, 'm', { operation: 'getSecret', retryAfterMs: 2000 })).code).toBe(GrpcCode.RESOURCE_EXHAUSTED);
    expect(filter.toStatus(new KeyVaultError(KeyVaultErrorCode.TIMEOUT, 'm', { operation: 'getSecret' })).code).toBe(GrpcCode.DEADLINE_EXCEEDED);
  });

  it('joins validation messages of a transport error, without a numeric code', () => {
    const s = filter.toStatus(new BadRequestException(['a must be x', 'b must be y']));
    expect(s).toMatchObject({ code: GrpcCode.INVALID_ARGUMENT, details: 'a must be x; b must be y' });
    expect(s.metadata.get(ERROR_CODE_TRAILER)).toEqual([]);
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
