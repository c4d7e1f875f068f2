import { ErrorSeverity } from '@app/common';
import { CredentialUnavailableError, AuthenticationError } from '@azure/identity';
import { BrokenCircuitError, BulkheadRejectedError, TaskCancelledError } from 'cockatiel';
import { networkError, restError } from '../testing/fake-secret-client';
import { KeyVaultErrorCode as C } from './key-vault-error-code';
import { KeyVaultError, isKeyVaultError, type KeyVaultOperation } from './key-vault.error';
import { mayHaveTakenEffect, parseRetryAfterMs, toKeyVaultError } from './map-key-vault-error';

const get = (operation: KeyVaultOperation = 'getSecret') => ({ operation, secretName: 'tenant-a-github' });

/** A marker in the service's text: the vault's message may repeat request input, so none of it is quoted. */
const MARKER = 'mk7Q-echo';
const TENANT = 'tenant-3f9c1b7e';

/** What failed in the caller's words ("Reading the secret failed: CODE"), never the SDK method the gateway called. */
function expectCallerTerms(message: string, operation: KeyVaultOperation, codeName: string): void {
  expect(message).toMatch(new RegExp(`^[A-Z][a-z]+ (up )?(the|with the) [a-z' ]+ failed: ${codeName}\\b`));
  expect(message).not.toMatch(new RegExp(`\\b${operation}\\b`));
}

describe('toKeyVaultError', () => {
  it.each<[string, unknown, KeyVaultOperation, C]>([
    ['429', restError(429, 'Throttled', 'Too many requests', { 'retry-after': '3' }), 'getSecret', C.RATE_LIMITED],
    ['401', restError(401, 'Unauthorized', 'AKV10000: Request is missing a Bearer'), 'getSecret', C.UNAUTHORIZED],
    ['403 disabled', restError(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.'), 'getSecret', C.DISABLED],
    ['403 SecretDisabled code', restError(403, 'SecretDisabled', 'nope'), 'getSecret', C.DISABLED],
    ['403 access', restError(403, 'Forbidden', 'The user does not have secrets get permission on key vault'), 'getSecret', C.FORBIDDEN],
    [
      '403 purge protection',
      restError(403, 'Forbidden', 'Operation "purge" is not allowed because purge protection is enabled for this vault.'),
      'purgeDeletedSecret',
      C.PURGE_PROTECTED,
    ],
    ['404', restError(404, 'SecretNotFound', 'A secret with (name/id) x was not found'), 'getSecret', C.KEY_NOT_FOUND],
    ['400', restError(400, 'BadParameter', 'The request URI contains an invalid name'), 'setSecret', C.INVALID_REQUEST],
    ['400 on backup', restError(400, 'BadParameter', 'Backup is not allowed for more than 500 versions'), 'backupSecret', C.BACKUP_FAILED],
    ['400 on restore', restError(400, 'BadParameter', 'Backup blob is corrupt'), 'restoreSecretBackup', C.BACKUP_FAILED],
    ['409 ObjectIsDeletedButRecoverable code', restError(409, 'ObjectIsDeletedButRecoverable', 'x'), 'setSecret', C.DELETED_BUT_RECOVERABLE],
    [
      '409 Conflict with the Azure message',
      restError(409, 'Conflict', 'Secret x is currently in a deleted but recoverable state, and its name cannot be reused'),
      'setSecret',
      C.DELETED_BUT_RECOVERABLE,
    ],
    ['409 ObjectIsBeingDeleted (right after a purge)', restError(409, 'ObjectIsBeingDeleted', 'x'), 'setSecret', C.OBJECT_BEING_DELETED],
    ['409 Conflict with the being-deleted message', restError(409, 'Conflict', 'Secret x is currently being deleted.'), 'restoreSecretBackup', C.OBJECT_BEING_DELETED],
    [
      '409 Conflict with the inner error code only',
      Object.assign(restError(409, 'Conflict', 'The request conflicts with the current state'), { details: { error: { innerError: { code: 'ObjectIsBeingDeleted' } } } }),
      'createKey',
      C.OBJECT_BEING_DELETED,
    ],
    [
      '409 Conflict while a recover completes (azure-sdk-for-net #31581)',
      Object.assign(restError(409, 'Conflict', 'Secret x is currently being recovered and cannot be re-created; retry later.'), {
        details: { error: { innerError: { code: 'ObjectIsBeingRecovered' } } },
      }),
      'setSecret',
      C.OBJECT_BEING_RECOVERED,
    ],
    ['409 ObjectIsBeingRecovered by its inner code only', Object.assign(restError(409, 'Conflict', 'x'), { details: { error: { innererror: { code: 'ObjectIsBeingRecovered' } } } }), 'createKey', C.OBJECT_BEING_RECOVERED],
    ['409 other', restError(409, 'Conflict', 'There was a conflict with a concurrent operation'), 'setSecret', C.CONFLICT],
    ['500', restError(500, 'InternalServerError', 'boom'), 'getSecret', C.SERVICE_UNAVAILABLE],
    ['503', restError(503, 'ServiceUnavailable', 'down', { 'retry-after': '2' }), 'getSecret', C.SERVICE_UNAVAILABLE],
    ['408', restError(408, 'RequestTimeout', 'slow'), 'getSecret', C.TIMEOUT],
    ['ECONNRESET', networkError('ECONNRESET', 'socket hang up'), 'getSecret', C.SERVICE_UNAVAILABLE],
    ['ECONNREFUSED', networkError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'), 'getSecret', C.SERVICE_UNAVAILABLE],
    ['socket hang up without code', networkError('REQUEST_SEND_ERROR', 'socket hang up'), 'getSecret', C.SERVICE_UNAVAILABLE],
    ['ETIMEDOUT', networkError('ETIMEDOUT', 'connect ETIMEDOUT'), 'getSecret', C.TIMEOUT],
    ['untrusted TLS', networkError('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'), 'getSecret', C.CONFIGURATION],
    ['AbortError', Object.assign(new Error('The operation was aborted.'), { name: 'AbortError' }), 'getSecret', C.TIMEOUT],
    ['cockatiel timeout', new TaskCancelledError(), 'getSecret', C.TIMEOUT],
    ['open breaker', new BrokenCircuitError(), 'getSecret', C.CIRCUIT_OPEN],
    ['full bulkhead', new BulkheadRejectedError(1, 1), 'getSecret', C.BULKHEAD_FULL],
    ['CredentialUnavailableError', new CredentialUnavailableError('ManagedIdentityCredential: no IMDS'), 'getSecret', C.UNAUTHORIZED],
    ['AuthenticationError', new AuthenticationError(400, { error: 'invalid_client', error_description: 'bad secret' }), 'getSecret', C.UNAUTHORIZED],
    ['challenge mismatch', new Error("The challenge resource 'vault.azure.net' does not match the requested domain."), 'getSecret', C.CONFIGURATION],
    ['anything else', new TypeError('x is not a function'), 'getSecret', C.UNKNOWN],
  ])('%s', (_label, error, operation, code) => {
    const e = toKeyVaultError(error, get(operation));
    expect(e).toBeInstanceOf(KeyVaultError);
    // codeNames are unique across libs: the two members other libs also use carry the lib prefix.
    expect(e.codeName).toBe(code === C.CONFLICT || code === C.CONFIGURATION ? `KEY_VAULT_${C[code]}` : C[code]);
    expect(e.code).toBe(code);
    expect(e.cause).toBe(error);
    expect(e.operation).toBe(operation);
    expectCallerTerms(e.message, operation, e.codeName);
    expect(e.message).not.toContain('tenant-a-github');
  });

  // These surface at the first vault call, far from the options that caused them: the message names the option to set.
  it.each([
    ['an untrusted certificate (SDK network error)', () => networkError('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'), /not trusted; for a local vault, pass its CA in the KeyVaultModule option tls\.caCertPath or tls\.caCertPem/],
    ['an untrusted certificate (plain Node error)', () => Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }), /tls\.caCertPath or tls\.caCertPem/],
    ['an expired certificate', () => networkError('CERT_HAS_EXPIRED', 'certificate has expired'), /the vault's certificate has expired\)$/],
    // An https:// vaultUrl on a plain-HTTP server or port: its 'HTTP/1.1 400' is no TLS record. Not transient: no 'retry later'.
    ['a plain-HTTP server (SDK network error)', () => networkError('EPROTO', 'write EPROTO 80:error:0A00010B:SSL routines:ssl3_get_record:wrong version number'), /the vault did not answer in TLS: vaultUrl \(the stock host's KEY_VAULT_URL\) must be the vault's https:\/\/ address, not a plain-HTTP server or port\)$/],
    ['a plain-HTTP server (newer OpenSSL)', () => Object.assign(new Error('SSL routines::packet length too long'), { code: 'ERR_SSL_PACKET_LENGTH_TOO_LONG' }), /did not answer in TLS: vaultUrl/],
    ['a challenge for another resource', () => new Error("The challenge resource 'vault.azure.net' does not match the requested domain."), /for a local vault set the KeyVaultModule option disableChallengeResourceVerification: true/],
  ])('%s: the CONFIGURATION message says what to set', (_label, error, remedy) => {
    const e = toKeyVaultError(error(), get('setSecret'));
    expect(e.code).toBe(C.CONFIGURATION);
    expect(e.message).toMatch(remedy);
  });

  // Every message built by the map, for a secret (its name carries the tenant id) and a key (a tenant hash).
  const withMarker = (status: number, code: string, text: string, headers?: Record<string, string>) => restError(status, code, `${text} ${MARKER} ${TENANT}-github`, headers);
  const failures: [string, () => unknown][] = [
    ['429', () => withMarker(429, 'Throttled', 'Too many requests', { 'retry-after': '3' })],
    ['401', () => withMarker(401, 'Unauthorized', 'AKV10000')],
    ['403 disabled', () => withMarker(403, 'Forbidden', 'disabled secret')],
    ['403', () => withMarker(403, 'Forbidden', 'no permission')],
    ['403 purge protection', () => withMarker(403, 'Forbidden', 'purge protection is enabled')],
    ['404', () => withMarker(404, 'SecretNotFound', 'A secret with (name/id) was not found')],
    ['400', () => withMarker(400, 'BadParameter', 'The request URI contains an invalid name')],
    ['409', () => withMarker(409, 'Conflict', 'deleted but recoverable')],
    ['500', () => withMarker(500, 'InternalServerError', 'boom')],
    ['service code that is text', () => restError(400, `${MARKER} ${TENANT}`, 'x')],
    ['network', () => networkError('ECONNRESET', `socket hang up ${MARKER}`)],
    ['network, unknown code', () => networkError(`${MARKER} ${TENANT}`, `socket ${MARKER}`)],
    ['identity', () => new CredentialUnavailableError(`ManagedIdentityCredential ${MARKER} ${TENANT}`)],
    ['challenge', () => new Error(`The challenge resource '${MARKER}' does not match the requested domain.`)],
    ['unknown', () => Object.assign(new Error(`request body ${MARKER}`), { name: `${MARKER} ${TENANT}` })],
  ];
  it.each(failures.flatMap(([label, error]) => [
    [`${label} (secret)`, error, 'getSecret', `cv-${TENANT}-github-token`],
    [`${label} (key)`, error, 'sign', `cv-key-3f9c1b7e2a4d6f8091a2b3c4-${TENANT}`],
  ] as [string, () => unknown, KeyVaultOperation, string][]))('%s: the message quotes neither the name nor the service text', (_label, error, operation, name) => {
    const e = toKeyVaultError(error(), { operation, secretName: name, timeoutMs: 100 });
    for (const leak of [TENANT, name, MARKER, 'not found', 'invalid name', 'socket']) expect(e.message).not.toContain(leak);
    expectCallerTerms(e.message, operation, e.codeName);
    // The name stays on the error for its caller, out of every serialization.
    expect(e.secretName).toBe(name);
    expect(JSON.stringify(e)).not.toContain(TENANT);
    expect(Object.keys(e)).not.toContain('secretName');
  });

  it('words each failure by what the caller asked for, code, what happened and whether to retry', () => {
    const message = (error: unknown, operation: KeyVaultOperation = 'getSecret') => toKeyVaultError(error, { operation, secretName: `cv-${TENANT}-x`, timeoutMs: 5000 }).message;
    expect(message(restError(404, 'SecretNotFound', 'gone'))).toBe('Reading the secret failed: KEY_NOT_FOUND (HTTP 404 SecretNotFound; no secret of that name or version)');
    expect(message(restError(429, 'Throttled', 'slow', { 'retry-after': '3' }))).toBe('Reading the secret failed: RATE_LIMITED (HTTP 429 Throttled); retry after 3 s');
    expect(message(restError(503, 'ServiceUnavailable', 'down'))).toBe('Reading the secret failed: SERVICE_UNAVAILABLE (HTTP 503 ServiceUnavailable); retry later');
    expect(message(restError(409, 'Conflict', 'x is currently in a deleted but recoverable state'), 'setSecret')).toBe(
      'Writing the secret failed: DELETED_BUT_RECOVERABLE (HTTP 409 Conflict; the name is soft-deleted; recover or purge it first)',
    );
    expect(message(restError(403, 'Forbidden', 'no access'), 'sign')).toBe(
      "Signing with the key failed: FORBIDDEN (HTTP 403 Forbidden; the host's identity lacks this permission (access policy or RBAC role))",
    );
    expect(message(new TaskCancelledError())).toBe('Reading the secret failed: TIMEOUT (no answer after 5000 ms); retry later');
    // The break's end unknown (or just passed): still told when to come back, as the HTTP answer's Retry-After.
    expect(message(new BrokenCircuitError())).toBe(
      'Reading the secret failed: CIRCUIT_OPEN (the vault failed repeatedly; calls fail fast until the breaker half-opens); retry after 1 s',
    );
    expect(message(networkError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'))).toBe('Reading the secret failed: SERVICE_UNAVAILABLE (ECONNREFUSED); retry later');
    expect(message(new TypeError('x is not a function'))).toBe('Reading the secret failed: UNKNOWN (TypeError)');
  });

  it('an open breaker always says when to come back: what is left of its break, else 0 (ended as the call was refused, or unknown)', () => {
    const circuit = (left: number | undefined) => toKeyVaultError(new BrokenCircuitError(), { ...get(), breakerOpenForMs: () => left });
    expect([circuit(2500).retryAfterMs, circuit(0).retryAfterMs, circuit(undefined).retryAfterMs]).toEqual([2500, 0, 0]);
    expect(circuit(0).message).toMatch(/; retry after 1 s$/);
  });

  it('keeps status, the service code and Retry-After', () => {
    const e = toKeyVaultError(restError(429, 'Throttled', 'slow down', { 'retry-after': '7' }), get());
    expect(e).toMatchObject({ statusCode: 429, azureCode: 'Throttled', retryAfterMs: 7000 });
    expect(e.secretName).toBe('tenant-a-github');
    expect(e.retryable).toBe(true);
    expect(toKeyVaultError(restError(503, 'ServiceUnavailable', 'x', { 'retry-after': '1' }), get()).retryAfterMs).toBe(1000);
  });

  it('gives each code its documented severity', () => {
    const severity = (status: number, code = 'X', msg = 'x') => toKeyVaultError(restError(status, code, msg), get()).severity;
    expect(severity(429)).toBe(ErrorSeverity.TRANSIENT);
    expect(severity(503)).toBe(ErrorSeverity.TRANSIENT);
    expect(severity(401)).toBe(ErrorSeverity.CONFIGURATION);
    expect(severity(403)).toBe(ErrorSeverity.CONFIGURATION);
    expect(severity(404)).toBe(ErrorSeverity.CLIENT);
    expect(severity(409)).toBe(ErrorSeverity.CLIENT);
    expect(severity(403, 'Forbidden', 'disabled secret')).toBe(ErrorSeverity.CLIENT);
    expect(toKeyVaultError(new BrokenCircuitError(), get()).severity).toBe(ErrorSeverity.TRANSIENT);
    expect(toKeyVaultError(new Error('?'), get()).severity).toBe(ErrorSeverity.FATAL);
  });

  it('returns a KeyVaultError unchanged and never copies an unknown error message', () => {
    const original = toKeyVaultError(restError(404, 'SecretNotFound', 'gone'), get());
    expect(toKeyVaultError(original, get('setSecret'))).toBe(original);
    const leaky = toKeyVaultError(new Error('request body {"value":"hunter2"}'), get('setSecret'));
    expect(leaky.message).not.toContain('hunter2');
  });

  it('isKeyVaultError checks the type and optionally the code', () => {
    const e = toKeyVaultError(restError(404, 'SecretNotFound', 'gone'), get());
    expect(isKeyVaultError(e)).toBe(true);
    expect(isKeyVaultError(e, C.KEY_NOT_FOUND)).toBe(true);
    expect(isKeyVaultError(e, C.CONFLICT)).toBe(false);
    expect(isKeyVaultError(new Error('x'))).toBe(false);
    expect(e.toJSON()).toMatchObject({ code: 1003, codeName: 'KEY_NOT_FOUND', statusCode: 404, azureCode: 'SecretNotFound' });
  });
});

describe('mayHaveTakenEffect', () => {
  const create = (e: unknown) => mayHaveTakenEffect(toKeyVaultError(e, get('createKey')));

  it('is true when no usable answer came back: a timeout, a connection lost after sending, a 5xx, a broken 2xx', () => {
    expect(mayHaveTakenEffect(new TaskCancelledError('timed out'))).toBe(true);
    expect(create(new TaskCancelledError('timed out'))).toBe(true);
    expect(create(networkError('ECONNRESET', 'socket hang up'))).toBe(true);
    expect(create(restError(500, 'InternalServerError', 'x'))).toBe(true);
    expect(create(restError(503, 'ServiceUnavailable', 'x'))).toBe(true);
    expect(mayHaveTakenEffect(new KeyVaultError(C.INVALID_RESPONSE, 'x', { operation: 'createKey' }))).toBe(true);
  });

  it('is false when the vault refused it or it never left: 429, 4xx, a refused connection, breaker, bulkhead', () => {
    expect(create(restError(429, 'Throttled', 'x', { 'retry-after': '1' }))).toBe(false);
    expect(create(restError(409, 'Conflict', 'x'))).toBe(false);
    expect(create(restError(400, 'BadParameter', 'x'))).toBe(false);
    expect(create(networkError('ECONNREFUSED', 'connect ECONNREFUSED'))).toBe(false);
    expect(create(new BrokenCircuitError())).toBe(false);
    expect(create(new BulkheadRejectedError(1, 1))).toBe(false);
  });
});

describe('parseRetryAfterMs', () => {
  const h = (o: Record<string, string>) => ({ get: (n: string) => o[n] });
  it('reads delta-seconds, an HTTP date, and the ms variants', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfterMs(h({ 'retry-after': '2' }), now)).toBe(2000);
    expect(parseRetryAfterMs(h({ 'retry-after': 'Thu, 01 Jan 2026 00:00:05 GMT' }), now)).toBe(5000);
    expect(parseRetryAfterMs(h({ 'retry-after': 'Wed, 31 Dec 2025 23:59:00 GMT' }), now)).toBe(0);
    expect(parseRetryAfterMs(h({ 'retry-after-ms': '150', 'retry-after': '9' }), now)).toBe(150);
    expect(parseRetryAfterMs(h({ 'x-ms-retry-after-ms': '250' }), now)).toBe(250);
    expect(parseRetryAfterMs(h({ 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(parseRetryAfterMs(h({}), now)).toBeUndefined();
  });
});
