import { Test } from '@nestjs/testing';
import { Injectable } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity, sqlState } from '@app/common';

class SampleError extends CredentialVaultError {
  readonly code = 42;
  readonly codeName = 'SAMPLE';
  readonly severity = ErrorSeverity.TRANSIENT;
}

@Injectable()
class Thrower {
  fail(): never {
    throw new SampleError('nope', { cause: new Error('root') });
  }
}

describe('CredentialVaultError', () => {
  it('keeps code, severity, name and cause through DI-built services', async () => {
    const mod = await Test.createTestingModule({ providers: [Thrower] }).compile();
    const t = mod.get(Thrower);
    try {
      t.fail();
      throw new Error('unreachable');
    } catch (e) {
      expect(e).toBeInstanceOf(SampleError);
      const err = e as SampleError;
      expect(err.name).toBe('SampleError');
      expect(err.retryable).toBe(true);
      expect((err.cause as Error).message).toBe('root');
      expect(err.toJSON()).toMatchObject({ code: 42, codeName: 'SAMPLE' });
    }
  });
});

describe('sqlState', () => {
  it("reads node-postgres' code, or the one TypeORM's QueryFailedError wraps; nothing else", () => {
    expect(sqlState(Object.assign(new Error('x'), { code: '26000' }))).toBe('26000');
    expect(sqlState({ driverError: { code: '55P03' }, code: 'IGNORED' })).toBe('55P03');
    expect(sqlState(new SampleError('x'))).toBeUndefined(); // a numeric code is ours, not a SQLSTATE
    expect(sqlState(undefined)).toBeUndefined();
    expect(sqlState(null)).toBeUndefined();
  });
});
