import { AuditErrorCode } from '@app/audit';
import { LockErrorCode, PersistenceErrorCode } from '@app/common';
import { CredentialErrorCode as C } from '@app/credentials';
import { KeyVaultErrorCode as KV } from '@app/key-vault';
import { KeysErrorCode as K } from '@app/keys';
import { OAuthRefreshErrorCode as O } from '@app/oauth-refresh';
import { NotificationErrorCode as N, RotationErrorCode as R, WebhookSecretErrorCode as W } from '@app/rotation';
import { HostErrorCode } from './host-errors';

/**
 * The typed errors each operation's service can raise, by stable code: the OpenAPI document lists each status they
 * map to (error-status.ts, the one mapping) with the codes behind it. Read from the libs' throw sites; keep it in
 * step when a service gains an error. Statuses every operation can give (400, 401, 403, 429, 500, 503) and those of
 * the path and body's transport (404, 414; 413, 415) are added by withErrorAnswers, not here.
 */
type Codes = readonly number[];

/** Every authenticated operation reads or writes the database (and the audit log): busy, stalled or gone is a 503. */
export const DATABASE_ERRORS: Codes = [
  HostErrorCode.DATABASE_UNAVAILABLE,
  PersistenceErrorCode.DATABASE_UNRESPONSIVE,
  PersistenceErrorCode.DATABASE_POOL_EXHAUSTED,
  PersistenceErrorCode.DATABASE_CONNECTION_LOST,
  LockErrorCode.LOCK_TIMEOUT,
  LockErrorCode.LOCK_SESSIONS_EXHAUSTED,
  AuditErrorCode.WRITE_FAILED,
  AuditErrorCode.UNAVAILABLE,
];

/** A call to Key Vault (after its retries and breaker): throttled or down 503, our identity refused 502, no answer 504. */
const VAULT: Codes = [KV.RATE_LIMITED, KV.SERVICE_UNAVAILABLE, KV.CIRCUIT_OPEN, KV.BULKHEAD_FULL, KV.UNAUTHORIZED, KV.FORBIDDEN, KV.INVALID_RESPONSE, KV.TIMEOUT, KV.OUTCOME_UNKNOWN];
/** A write of a new credential value (credential.writer.ts, stores/vault-value-store.ts). */
const VALUE_WRITE: Codes = [C.VALIDATION, C.GENERATIONS_EXHAUSTED, C.WRITE_TOO_SLOW, ...VAULT];
/** A read of a credential's value (credential.reader.ts). */
const VALUE_READ: Codes = [C.NOT_FOUND, C.REVOKED, C.EXPIRED, ...VAULT];
/** A change of a credential that exists (credential-change.committer.ts: the compare-and-set of expectedVersion). */
const CHANGE: Codes = [C.NOT_FOUND, C.CONFLICT, C.REVOKED];
/** OAuth access-token reads and refreshes (oauth-refresh.service.ts, refresh/*, store/credentials-token-store.ts). */
const OAUTH_TOKEN: Codes = [
  O.VALIDATION,
  O.PROVIDER_NOT_REGISTERED,
  O.CONNECTION_NOT_FOUND,
  O.REAUTH_REQUIRED,
  O.ACCESS_TOKEN_EXPIRED,
  O.REFRESH_FAILED,
  O.INVALID_TOKEN_RESPONSE,
  O.CLIENT_REJECTED,
  C.REVOKED,
  C.CONFLICT,
  ...VAULT,
];
/** The webhook-secret keyring and its rotation lock (webhook-secret-keyring.ts, webhook-rotation-lock.ts). */
const WEBHOOK: Codes = [W.WEBHOOK_VALIDATION, W.WEBHOOK_SECRET_NOT_FOUND, W.WEBHOOK_WRONG_CREDENTIAL_TYPE, W.WEBHOOK_ROTATION_IN_PROGRESS, C.REVOKED, ...VAULT];
/** The staged rotation's steps (webhook-secret-rotator.ts, webhook-rotation-steps.ts). */
const STAGED: Codes = [W.WEBHOOK_NOTHING_STAGED, W.WEBHOOK_STAGED_ROTATION_MISMATCH];
/** Every key operation is a Key Vault keys call (keys.service.ts over the key-vault lib)… */
const KEY_CALL: Codes = [K.KEYS_VALIDATION, KV.INVALID_REQUEST, ...VAULT];
/** …and those naming a key find it missing, or in the middle of a delete or recovery. */
const KEY: Codes = [...KEY_CALL, KV.KEY_NOT_FOUND, KV.OBJECT_BEING_DELETED, KV.OBJECT_BEING_RECOVERED];
/** Cryptography with a key (key-request-checks.ts; a disabled key version is the vault's 403). */
const CRYPTO: Codes = [...KEY, K.ALGORITHM_NOT_ALLOWED, K.KEY_TYPE_MISMATCH, K.KEY_OPERATION_NOT_PERMITTED, K.KEY_NOT_USABLE, KV.DISABLED];
/** A name taken (or soft-deleted) in the vault. */
const NAME_TAKEN: Codes = [K.KEY_ALREADY_EXISTS, KV.CONFLICT, KV.DELETED_BUT_RECOVERABLE, KV.OBJECT_BEING_DELETED, KV.OBJECT_BEING_RECOVERED];

const WEBHOOKS = '/v1/rotation/webhooks/{integrationId}/{connectionId}';
const OAUTH = '/v1/oauth/connections/{integrationId}/{connectionId}';

/** By `method path` as in the document: every authenticated operation has an entry (withErrorAnswers checks both ways). */
export const OPERATION_ERRORS: Readonly<Record<string, Codes>> = {
  'post /v1/credentials': [C.ALREADY_EXISTS, ...VALUE_WRITE],
  'get /v1/credentials': [],
  'get /v1/credentials/expiring': [],
  'get /v1/credentials/statistics': [],
  'post /v1/credentials/delete-batch': [C.VALIDATION],
  'get /v1/credentials/{id}': [C.NOT_FOUND],
  // A PATCH that revokes is the revocation's (credential.revoker.ts).
  'patch /v1/credentials/{id}': [C.VALIDATION, ...CHANGE, C.REVOKE_INCOMPLETE],
  // The vault side of a delete is the outbox's (vault-value-deletion.ts): its failures never reach the caller.
  'delete /v1/credentials/{id}': [C.NOT_FOUND, C.CONFLICT],
  'get /v1/credentials/{id}/value': VALUE_READ,
  'get /v1/credentials/{id}/versions': [C.NOT_FOUND],
  'get /v1/credentials/{id}/versions/{version}/value': [C.VERSION_NOT_FOUND, ...VALUE_READ],
  'post /v1/credentials/{id}/rotate': [...CHANGE, ...VALUE_WRITE],
  'post /v1/credentials/{id}/rollback': [...CHANGE, C.VERSION_NOT_FOUND, ...VALUE_WRITE],
  'get /v1/connections': [],
  'delete /v1/connections/{integrationId}/{connectionId}': [C.NOT_FOUND],

  'get /v1/audit': [AuditErrorCode.INVALID_QUERY],
  'post /v1/audit/verify': [AuditErrorCode.ANCHOR_UNAVAILABLE, AuditErrorCode.ANCHOR_DAMAGED],

  [`post ${OAUTH}/tokens`]: [O.VALIDATION, O.PROVIDER_NOT_REGISTERED, C.ALREADY_EXISTS, ...CHANGE, ...VALUE_WRITE],
  [`get ${OAUTH}/access-token`]: OAUTH_TOKEN,
  [`post ${OAUTH}/token-rejected`]: OAUTH_TOKEN,

  'get /v1/rotation/policies': [],
  'put /v1/rotation/policies': [R.VALIDATION, R.POLICY_CONFLICT],
  'delete /v1/rotation/policies': [R.VALIDATION, R.POLICY_NOT_FOUND, R.POLICY_CONFLICT],
  'get /v1/rotation/policies/scope': [R.VALIDATION, R.POLICY_NOT_FOUND],
  'get /v1/rotation/credentials/{id}/policy': [C.NOT_FOUND],
  'post /v1/rotation/credentials/{id}/rotate': [...CHANGE, R.NO_ROTATION_HANDLER, R.ROTATION_IN_PROGRESS, R.ROTATION_FAILED, ...VALUE_WRITE],
  'post /v1/rotation/credentials/{id}/rollback': [...CHANGE, C.VERSION_NOT_FOUND, R.ROTATION_IN_PROGRESS, ...VALUE_WRITE],
  'get /v1/rotation/credentials/{id}/history': [C.NOT_FOUND],
  'get /v1/rotation/credentials/{id}/pending': [C.NOT_FOUND],
  'post /v1/rotation/revoke': [R.VALIDATION, R.NOTHING_TO_REVOKE, C.NOT_FOUND, C.CONFLICT, C.REVOKE_INCOMPLETE],
  // Un-revoke re-enables the vault versions its revoke disabled (credential.revoker.ts): the vault's answers are its own.
  'post /v1/rotation/credentials/{id}/unrevoke': [C.NOT_FOUND, C.CONFLICT, R.NOT_REVOKED, ...VAULT],
  'get /v1/rotation/expiries': [],
  'get /v1/rotation/due': [],

  'get /v1/rotation/notifications/settings': [],
  // NOT_FOUND: the signing secret deleted between two steps of its write (writeSecret), a narrow race.
  'put /v1/rotation/notifications/settings': [N.NOTIFICATION_SETTINGS_INVALID, N.NOTIFICATION_TARGET_FORBIDDEN, N.NOTIFICATION_SETTINGS_CONFLICT, C.NOT_FOUND, ...VALUE_WRITE],

  [`post ${WEBHOOKS}/secret`]: [W.WEBHOOK_VALIDATION, C.ALREADY_EXISTS, ...VALUE_WRITE],
  [`post ${WEBHOOKS}/rotate`]: [...WEBHOOK, W.WEBHOOK_SECRET_ALREADY_STAGED, W.WEBHOOK_UPDATER_NOT_REGISTERED, W.WEBHOOK_UPDATE_FAILED, ...VALUE_WRITE],
  [`post ${WEBHOOKS}/secret/stage`]: [...WEBHOOK, W.WEBHOOK_SECRET_ALREADY_STAGED, ...VALUE_WRITE],
  [`post ${WEBHOOKS}/secret/activate`]: [...WEBHOOK, ...STAGED, W.WEBHOOK_STAGED_SECRET_EXPIRED, ...CHANGE],
  [`post ${WEBHOOKS}/secret/discard`]: [...WEBHOOK, ...STAGED],
  [`get ${WEBHOOKS}/versions`]: [W.WEBHOOK_SECRET_NOT_FOUND, W.WEBHOOK_WRONG_CREDENTIAL_TYPE],
  // A webhook that does not verify is the sender's problem (webhook-secret.errors.ts): 400 or 401.
  [`post ${WEBHOOKS}/verify`]: [
    ...WEBHOOK,
    W.WEBHOOK_MISSING_ID,
    W.WEBHOOK_MISSING_TIMESTAMP,
    W.WEBHOOK_MISSING_SIGNATURE,
    W.WEBHOOK_TIMESTAMP_TOO_OLD,
    W.WEBHOOK_TIMESTAMP_TOO_NEW,
    W.WEBHOOK_SIGNATURE_MISMATCH,
  ],

  'post /v1/keys': [...KEY_CALL, ...NAME_TAKEN],
  'get /v1/keys': KEY_CALL,
  'post /v1/keys/restore': [...KEY_CALL, ...NAME_TAKEN, K.INVALID_KEY_BACKUP, KV.BACKUP_FAILED],
  'get /v1/keys/{name}': KEY,
  'patch /v1/keys/{name}': [...KEY, KV.CONFLICT],
  // DELETE_UNDONE: the key recovered at the vault (by someone else) while the delete waited for its deletion; it is live.
  'delete /v1/keys/{name}': [...KEY, KV.DELETE_UNDONE],
  'get /v1/keys/{name}/versions': KEY,
  'get /v1/keys/{name}/versions/{version}': KEY,
  'patch /v1/keys/{name}/versions/{version}': [...KEY, KV.CONFLICT],
  'post /v1/keys/{name}/rotate': [...KEY, KV.DISABLED],
  'post /v1/keys/{name}/backup': [...KEY, KV.BACKUP_FAILED],
  'post /v1/keys/{name}/sign': CRYPTO,
  'post /v1/keys/{name}/verify': CRYPTO,
  'post /v1/keys/{name}/encrypt': CRYPTO,
  'post /v1/keys/{name}/decrypt': CRYPTO,
  'post /v1/keys/{name}/wrap-key': CRYPTO,
  'post /v1/keys/{name}/unwrap-key': CRYPTO,
  'post /v1/deleted-keys/{name}/recover': [...KEY, KV.CONFLICT],
  'delete /v1/deleted-keys/{name}': [...KEY, KV.PURGE_PROTECTED],
};
