import { HttpStatus } from '@nestjs/common';
import {
  CredentialVaultError,
  ERROR_CODE_RANGES,
  LOCK_ERROR_HTTP_STATUS,
  PERSISTENCE_ERROR_HTTP_STATUS,
  SCHEDULED_JOB_ERROR_HTTP_STATUS,
  type ErrorCodeRangeName,
} from '@app/common';
import { KEY_VAULT_ERROR_HTTP_STATUS } from '@app/key-vault';
import { CREDENTIAL_ERROR_HTTP_STATUS } from '@app/credentials';
import { AUDIT_ERROR_HTTP_STATUS } from '@app/audit';
import { OAUTH_REFRESH_ERROR_HTTP_STATUS } from '@app/oauth-refresh';
import { MIGRATION_ERROR_HTTP_STATUS } from '@app/migration';
import { NOTIFICATION_ERROR_HTTP_STATUS, ROTATION_ERROR_HTTP_STATUS, WEBHOOK_SECRET_ERROR_HTTP_STATUS } from '@app/rotation';
import { KEYS_ERROR_HTTP_STATUS } from '@app/keys';
import { HOST_ERROR_HTTP_STATUS } from './host-errors';

/**
 * The one place where typed lib errors become HTTP statuses. Each lib owns its table (keyed by its
 * code enum, so a new code does not compile without a status); the host only composes them, one per
 * registered code range, so registering a lib's range without its table does not compile either.
 */
export const ERROR_HTTP_STATUS_TABLES: Record<ErrorCodeRangeName, Readonly<Record<number, HttpStatus>>> = {
  keyVault: KEY_VAULT_ERROR_HTTP_STATUS,
  credentials: CREDENTIAL_ERROR_HTTP_STATUS,
  // The rotation lib's three parts share its block: core 30xx, webhooks 31xx, notifications 32xx.
  rotation: { ...ROTATION_ERROR_HTTP_STATUS, ...WEBHOOK_SECRET_ERROR_HTTP_STATUS, ...NOTIFICATION_ERROR_HTTP_STATUS },
  oauthRefresh: OAUTH_REFRESH_ERROR_HTTP_STATUS,
  audit: AUDIT_ERROR_HTTP_STATUS,
  persistence: PERSISTENCE_ERROR_HTTP_STATUS,
  jobs: SCHEDULED_JOB_ERROR_HTTP_STATUS,
  migration: MIGRATION_ERROR_HTTP_STATUS,
  lock: LOCK_ERROR_HTTP_STATUS,
  keys: KEYS_ERROR_HTTP_STATUS,
  host: HOST_ERROR_HTTP_STATUS,
};

const BY_CODE = composeTables(ERROR_HTTP_STATUS_TABLES);

function composeTables(tables: Record<ErrorCodeRangeName, Readonly<Record<number, HttpStatus>>>): ReadonlyMap<number, HttpStatus> {
  const byCode = new Map<number, HttpStatus>();
  for (const [lib, table] of Object.entries(tables) as [ErrorCodeRangeName, Record<number, HttpStatus>][]) {
    const [from, to] = ERROR_CODE_RANGES[lib];
    for (const [key, status] of Object.entries(table)) {
      const code = Number(key);
      // A table entry outside its lib's block would shadow (or be shadowed by) another lib's code.
      if (code < from || code > to) throw new Error(`HTTP status table "${lib}" maps code ${code}, outside its range ${from}..${to}`);
      byCode.set(code, status);
    }
  }
  return byCode;
}

/** The status the tables give `code`, or undefined when no lib maps it. */
export function httpStatusForCode(code: number): HttpStatus | undefined {
  return BY_CODE.get(code);
}

/** No guessing from names or severity: a code no table knows is a bug of ours, hence a 500. */
export function statusForError(err: CredentialVaultError): HttpStatus {
  return httpStatusForCode(err.code) ?? HttpStatus.INTERNAL_SERVER_ERROR;
}
