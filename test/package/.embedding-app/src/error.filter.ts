import { ArgumentsHost, Catch, HttpException, HttpStatus } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { AUDIT_ERROR_HTTP_STATUS } from '@credential-vault/nest/audit';
import {
  CredentialVaultError,
  LOCK_ERROR_HTTP_STATUS,
  PERSISTENCE_ERROR_HTTP_STATUS,
  SCHEDULED_JOB_ERROR_HTTP_STATUS,
} from '@credential-vault/nest/common';
import { CREDENTIAL_ERROR_HTTP_STATUS } from '@credential-vault/nest/credentials';
import { KEY_VAULT_ERROR_HTTP_STATUS } from '@credential-vault/nest/key-vault';
import { KEYS_ERROR_HTTP_STATUS } from '@credential-vault/nest/keys';
import { MIGRATION_ERROR_HTTP_STATUS } from '@credential-vault/nest/migration';
import { OAUTH_REFRESH_ERROR_HTTP_STATUS } from '@credential-vault/nest/oauth-refresh';
import { NOTIFICATION_ERROR_HTTP_STATUS, ROTATION_ERROR_HTTP_STATUS, WEBHOOK_SECRET_ERROR_HTTP_STATUS } from '@credential-vault/nest/rotation';

/** Every lib's code → HTTP status table (codes are unique across the libs). */
const STATUS_BY_CODE = new Map<number, number>(
  [
    KEY_VAULT_ERROR_HTTP_STATUS,
    CREDENTIAL_ERROR_HTTP_STATUS,
    AUDIT_ERROR_HTTP_STATUS,
    OAUTH_REFRESH_ERROR_HTTP_STATUS,
    ROTATION_ERROR_HTTP_STATUS,
    WEBHOOK_SECRET_ERROR_HTTP_STATUS,
    NOTIFICATION_ERROR_HTTP_STATUS,
    MIGRATION_ERROR_HTTP_STATUS,
    KEYS_ERROR_HTTP_STATUS,
    PERSISTENCE_ERROR_HTTP_STATUS,
    SCHEDULED_JOB_ERROR_HTTP_STATUS,
    LOCK_ERROR_HTTP_STATUS,
  ].flatMap((table) => Object.entries(table).map(([code, status]) => [Number(code), status] as const)),
);

/**
 * The libs' typed errors as HTTP answers: the status of their code (500 for a code no table knows), the
 * stable code and its name, and the message (a typed error's message never holds a value); `Retry-After`
 * when a 503 says when to retry. Register it with `{ provide: APP_FILTER, useClass: CredentialVaultErrorFilter }`.
 */
@Catch(CredentialVaultError)
export class CredentialVaultErrorFilter extends BaseExceptionFilter {
  override catch(error: CredentialVaultError, host: ArgumentsHost): void {
    const status = STATUS_BY_CODE.get(error.code) ?? HttpStatus.INTERNAL_SERVER_ERROR;
    const retryAfterMs = (error as { retryAfterMs?: number }).retryAfterMs;
    if (status === HttpStatus.SERVICE_UNAVAILABLE && typeof retryAfterMs === 'number' && retryAfterMs > 0) {
      this.httpAdapterHost?.httpAdapter.setHeader(host.switchToHttp().getResponse(), 'Retry-After', String(Math.ceil(retryAfterMs / 1000)));
    }
    const body = { statusCode: status, error: HttpStatus[status], message: error.message, code: error.code, codeName: error.codeName };
    super.catch(new HttpException(body, status, { cause: error }), host);
  }
}
