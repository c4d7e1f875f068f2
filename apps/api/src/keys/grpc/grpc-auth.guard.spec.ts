import { Logger, UnauthorizedException, type ExecutionContext } from '@nestjs/common';
import type { ModuleRef, Reflector } from '@nestjs/core';
import { Metadata } from '@grpc/grpc-js';
import { errors } from 'jose';
import type { AuditService } from '@app/audit';
import { AuthenticationFailed, AuthService } from '../../auth/auth.service';
import { loadAppConfig, type AppConfig } from '../../config/app.config';
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

/** The rate limiter's storage (found through the ModuleRef) and config: a failed authentication is counted first. */
const counted: string[] = [];
const limiter = {
  moduleRef: { get: () => ({ increment: async (key: string) => (counted.push(key), { isBlocked: false, totalHits: counted.length, timeToExpire: 60, timeToBlockExpire: 0 }) }) } as unknown as ModuleRef,
  config: { rateLimit: { perMinute: 100 } } as AppConfig,
};

describe('GrpcAuthGuard: a refusal whose audit fails', () => {
  afterEach(() => jest.restoreAllMocks());

  it('still refuses, and logs the audit error by class and code, never its message', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const auth = { authenticate: async () => Promise.reject(new AuthenticationFailed('invalid API key')) } as unknown as AuthService;
    const audit = { recordRead: async () => Promise.reject(new AuditWriteError()) } as unknown as AuditService;
    const guard = new GrpcAuthGuard({} as Reflector, auth, audit, limiter.moduleRef, limiter.config);
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
    expect(counted).toContain('failed-authentication-default-ip:127.0.0.1');
  });
});

describe('GrpcAuthGuard: a refused bearer token', () => {
  afterEach(() => jest.restoreAllMocks());

  it("answers UNAUTHENTICATED with the fixed reason of the jose error's code, never the library's text", async () => {
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const marker = 'MARKER-grpc-jose-77c0';
    const auth = new AuthService(loadAppConfig({ AUTH_JWT_ISSUER: 'https://issuer.test', AUTH_JWT_AUDIENCE: 'cv', AUTH_JWT_JWKS_URL: 'https://issuer.test/jwks' }));
    Object.assign(auth, { jwt: { verify: () => Promise.reject(new errors.JWTExpired(`"exp" claim timestamp check failed ${marker}`, { exp: 1 }, 'exp', 'check_failed')) } });
    const audit = { recordRead: async () => undefined } as unknown as AuditService;
    const guard = new GrpcAuthGuard({} as Reflector, auth, audit, limiter.moduleRef, limiter.config);
    const metadata = new Metadata();
    metadata.set('authorization', 'Bearer eyJ.any.token');
    const context = {
      switchToRpc: () => ({ getContext: () => metadata }),
      getArgByIndex: () => ({ getPath: () => '/credential_vault.keys.v1.Keys/ListKeys', getPeer: () => 'ipv4:127.0.0.1:5000' }),
      getHandler: () => function listKeys() {},
    } as unknown as ExecutionContext;

    const refused = await guard.canActivate(context).then(() => undefined, (e: unknown) => e);
    expect(refused).toBeInstanceOf(UnauthorizedException);
    expect((refused as UnauthorizedException).message).toBe('invalid bearer token: the token has expired');
    expect(JSON.stringify((refused as UnauthorizedException).getResponse())).not.toContain(marker);
  });
});
