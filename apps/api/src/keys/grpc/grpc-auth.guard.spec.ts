import { Logger, UnauthorizedException, type ExecutionContext } from '@nestjs/common';
import type { ModuleRef, Reflector } from '@nestjs/core';
import { Metadata } from '@grpc/grpc-js';
import type { AuditService } from '@app/audit';
import type { AppConfig } from '../../config/app.config';
import { AuthenticationFailed, type AuthService } from '../../auth/auth.service';
import { GrpcAuthGuard } from './grpc-auth.guard';

/** What a database error's text may quote of the audit row it could not write. */
const ROW_MARKER = 'cvk_LEAKED-KEY-ID_marker';

class AuditWriteError extends Error {
  readonly code = 'SQLITE_BUSY';
  constructor() {
    super(`could not insert audit row {"actor":"${ROW_MARKER}"}`);
    this.name = 'AuditWriteError';
  }
}

describe('GrpcAuthGuard: a refusal whose audit fails', () => {
  afterEach(() => jest.restoreAllMocks());

  it('still refuses, and logs the audit error by class and code, never its message', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const auth = { authenticate: async () => Promise.reject(new AuthenticationFailed('invalid API key')) } as unknown as AuthService;
    const audit = { recordRead: async () => Promise.reject(new AuditWriteError()) } as unknown as AuditService;
    const guard = new GrpcAuthGuard({} as Reflector, auth, audit, {} as ModuleRef, {} as AppConfig);
    const metadata = new Metadata();
    metadata.set('x-api-key', 'cvk_bad_key');
    const context = {
      switchToRpc: () => ({ getContext: () => metadata }),
      getArgByIndex: () => ({ getPath: () => '/credential_vault.keys.v1.Keys/Encrypt', getPeer: () => 'ipv4:127.0.0.1:5000' }),
      getHandler: () => function encrypt() {},
    } as unknown as ExecutionContext;

    await expect(guard.canActivate(context)).rejects.toBeInstanceOf(UnauthorizedException);

    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0][0])).toBe('Could not audit a refused gRPC call: AuditWriteError(SQLITE_BUSY)');
    expect(JSON.stringify(warn.mock.calls)).not.toContain(ROW_MARKER);
  });
});
