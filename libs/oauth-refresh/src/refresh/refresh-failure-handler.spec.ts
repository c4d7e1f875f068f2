import type { Logger } from '@nestjs/common';
import type { AuditEventInput } from '@app/audit';
import { ErrorSeverity, ManualClock } from '@app/common';
import { TokenEndpointFailure } from '../client/oauth-token-client';
import { OAuthClientRejectedError, OAuthInvalidTokenResponseError, OAuthRefreshFailedError } from '../errors/oauth-refresh.errors';
import type { ResolvedOAuthProvider } from '../providers/oauth-provider.config';
import type { StoredToken } from '../store/oauth-token-store';
import { RefreshFailureHandler } from './refresh-failure-handler';
import type { RefreshDeps } from './refresh-support';

/** What a host-bound token client (or the provider through it) may put into its messages. */
const MARKER = 'rt_MARKER-refresh-5521';

const token = (credentialId: string): StoredToken => ({ credentialId, version: 1, rowVersion: 1, reauthRequired: false, expiresAt: null, issuedAt: new Date(0), tags: {} });

function build() {
  const audited: AuditEventInput[] = [];
  const emitted: Array<Record<string, unknown>> = [];
  const lines: string[] = [];
  const remembered: unknown[] = [];
  const log = (m: unknown) => void lines.push(String(m));
  const deps = {
    clock: new ManualClock(new Date('2030-01-01T00:00:00Z')),
    cooldowns: {
      recordFailure: async (_k: string, now: Date, _retryAfterMs?: number, cause?: unknown) => {
        remembered.push(cause);
        return { until: new Date(now.getTime() + 1000), failures: 1 };
      },
      clear: async () => undefined,
    },
    store: { markReauthRequired: async () => undefined },
    audit: { record: async (e: AuditEventInput) => void audited.push(e) },
    events: { emit: (_n: string, p: Record<string, unknown>) => void emitted.push(p) },
    logger: { warn: log, error: log } as unknown as Logger,
  } as unknown as RefreshDeps;
  const handler = new RefreshFailureHandler(deps);
  const handle = (error: unknown) =>
    handler.handle({
      ctx: { tenantId: 't1', actor: { id: 'system' } },
      provider: { integrationId: 'idp' } as ResolvedOAuthProvider,
      connectionId: 'c1',
      key: 'k',
      access: token('access-id'),
      refresh: token('refresh-id'),
      reason: { trigger: 'on_demand', forced: false },
      error,
      started: Date.now(),
    });
  return { handle, audited, emitted, lines, remembered };
}

describe('RefreshFailureHandler: the error clients see', () => {
  it("is built from the failure's kind, HTTP status and OAuth error code, never the token client's message", async () => {
    const { handle, audited, emitted, lines } = build();
    const cases: Array<[TokenEndpointFailure, string]> = [
      [new TokenEndpointFailure('transient', `HTTP 503 {"refresh_token":"${MARKER}"}`, { status: 503, oauthError: 'temporarily_unavailable' }), 'the token endpoint failed or could not be reached (HTTP 503, OAuth error temporarily_unavailable)'],
      [new TokenEndpointFailure('rejected', `invalid_scope: ${MARKER}`, { status: 400, oauthError: 'invalid_scope' }), 'the token endpoint refused the refresh (HTTP 400, OAuth error invalid_scope)'],
      // A provider's "error" that is not a registered code is not repeated (one shaped like a code may be an echoed token), nor a message.
      [new TokenEndpointFailure('rejected', MARKER, { status: 400, oauthError: `bad ${MARKER}` }), 'the token endpoint refused the refresh (HTTP 400, OAuth error unregistered_error)'],
      [new TokenEndpointFailure('rejected', MARKER, { status: 400, oauthError: MARKER }), 'the token endpoint refused the refresh (HTTP 400, OAuth error unregistered_error)'],
      [new TokenEndpointFailure('transient', `connect ECONNREFUSED ${MARKER}`), 'the token endpoint failed or could not be reached'],
    ];
    for (const [failure, message] of cases) {
      const error = await handle(failure);
      expect(error).toBeInstanceOf(OAuthRefreshFailedError);
      expect(error.message).toBe(message);
      expect(JSON.stringify((error as OAuthRefreshFailedError).details)).not.toContain(MARKER);
    }
    const invalid = await handle(new TokenEndpointFailure('invalid_response', `bad JSON near "${MARKER}"`, { status: 200 }));
    expect(invalid).toBeInstanceOf(OAuthInvalidTokenResponseError);
    expect(invalid.message).toBe('the token endpoint sent an invalid token response (HTTP 200)');
    const untyped = await handle(Object.assign(new Error(`socket hang up ${MARKER}`), { code: 'ECONNRESET' }));
    expect(untyped.message).toBe('refresh failed: Error(ECONNRESET)');
    // Nor in what the handler logs, emits or audits about them.
    expect(JSON.stringify({ audited, emitted, lines })).not.toContain(MARKER);
    expect(emitted.length).toBe(7);
  });

  it('a refusal of the OAuth client (invalid_client, unauthorized_client, a bare 401) is OAUTH_CLIENT_REJECTED: configuration, not retryable, its cooldown remembered as such', async () => {
    const { handle, audited, emitted, remembered } = build();
    const cases: Array<[TokenEndpointFailure, string]> = [
      [new TokenEndpointFailure('rejected', `invalid_client: client ${MARKER} unknown`, { status: 401, oauthError: 'invalid_client' }), 'invalid_client, HTTP 401'],
      [new TokenEndpointFailure('rejected', MARKER, { status: 400, oauthError: 'unauthorized_client' }), 'unauthorized_client, HTTP 400'],
      [new TokenEndpointFailure('rejected', `WWW-Authenticate ${MARKER}`, { status: 401 }), 'HTTP 401'],
    ];
    for (const [failure, answered] of cases) {
      const error = await handle(failure);
      expect(error).toBeInstanceOf(OAuthClientRejectedError);
      expect({ code: error.codeName, retryable: error.retryable, severity: error.severity }).toEqual({ code: 'OAUTH_CLIENT_REJECTED', retryable: false, severity: ErrorSeverity.CONFIGURATION });
      expect(error.message).toContain(`refused this integration's OAuth client (${answered}): its client id or secret is wrong or revoked`);
      expect(error.message).toContain('not asked again before 2030-01-01T00:00:01.000Z');
    }
    // The cause goes with the cooldown (to the shared store): codes and numbers, nothing the provider wrote.
    expect(remembered).toEqual([
      { code: 'OAUTH_CLIENT_REJECTED', status: 401, oauthError: 'invalid_client' },
      { code: 'OAUTH_CLIENT_REJECTED', status: 400, oauthError: 'unauthorized_client' },
      { code: 'OAUTH_CLIENT_REJECTED', status: 401 },
    ]);
    expect(audited.map((a) => [a.result, a.errorCode])).toEqual(Array(3).fill(['failure', '4009:OAUTH_CLIENT_REJECTED']));
    expect(emitted.map((e) => [e.retryable, e.reauthRequired])).toEqual(Array(3).fill([false, false]));
    expect(JSON.stringify({ audited, emitted })).not.toContain(MARKER);
  });
});
