/**
 * Integration: the proactive job while a provider fails for every connection — its token endpoint answering 503,
 * dropping the connection, or refusing the OAuth client (a real oidc-provider that knows no such client id). The log
 * says it in one warning per cause naming the integration, the count and a few connections, instead of a warning, an
 * error line and retry lines per connection; each connection is still counted, emitted and audited as a failed refresh.
 * On SQLite with the local vault.
 */
import { AuditAction, AuditResult } from '@app/audit';
import { ManualClock, type OperationContext } from '@app/common';
import { CapturingLogger } from '@app/testing';
import { OAuthRefreshEvents } from '../index';
import { registerTestProvider, useOAuthStack } from '../oauth-refresh-stack.testing';

const MIN = 60_000;
const N = 12;

describe('the proactive refresh job when a provider fails for all its connections (SQLite)', () => {
  const clock = new ManualClock(new Date());
  const logger = new CapturingLogger();
  const ctx: OperationContext = { tenantId: 'outage', actor: { id: 'user:alice' } };
  /** Every token the server issued here: none may show up in a log line. */
  const issued = new Set<string>();
  let expiresAt: Date;
  let run = 0;

  // Cooldowns of a second: each test's run (5 s after the last) finds every connection due again.
  const stack = useOAuthStack('sqlite', {
    clock,
    logger,
    oauth: { retry: { maxAttempts: 2, initialDelayMs: 5, maxDelayMs: 20 }, failureCooldownMs: 1000, maxFailureCooldownMs: 1000, proactive: { enabled: false } },
    provider: { integrationId: 'idp' },
  });

  beforeAll(async () => {
    for (let i = 0; i < N; i++) {
      const tokens = await stack.server.authorize();
      issued.add(tokens.access_token).add(tokens.refresh_token!);
      expiresAt = (await stack.oauth.storeOAuthCredentials(ctx, 'idp', `conn-${i}`, tokens)).expiresAt;
    }
  });
  beforeEach(() => {
    clock.set(new Date(expiresAt.getTime() - 2 * MIN + run++ * 5000)); // inside every connection's refresh window
    stack.server.resetCounters();
  });
  afterEach(() => stack.server.clearFault());

  const failedRows = async () => (await stack.audit.query({ tenantId: ctx.tenantId, action: AuditAction.REFRESH, result: AuditResult.FAILURE, limit: 500 })).items.length;
  const failedEvents = () => stack.events.filter((e) => e.name === OAuthRefreshEvents.REFRESH_FAILED).length;
  /** One run of the job: its result, its warning and error lines, and the failures it emitted and audited. */
  const runJob = async () => {
    const since = logger.lines.length;
    const [events, rows] = [failedEvents(), await failedRows()];
    const result = await stack.oauth.refreshExpiringTokens();
    const lines = logger.lines.slice(since);
    return {
      result,
      // The lib's own lines (context OAuthRefreshService): the audit writer's suspicious-activity alert is its own matter.
      warnings: lines.filter((l) => /^(warn|error) /.test(l) && l.endsWith(' OAuthRefreshService')),
      summary: lines.filter((l) => l.startsWith('log proactive refresh:')),
      emitted: failedEvents() - events,
      audited: (await failedRows()) - rows,
    };
  };
  const folded = (cause: string) =>
    new RegExp(`^warn proactive refresh of ${N} connections of integration "idp" failed on the provider's side: ${cause}; connections (conn-\\d+ \\(tenant outage\\), ){2}conn-\\d+ \\(tenant outage\\) and ${N - 3} more `);

  it('a token endpoint answering 503: one warning for the twelve connections, each still retried, counted, emitted and audited', async () => {
    stack.server.failTokenEndpoint({ kind: 'status', status: 503 });

    const job = await runJob();

    expect(job.result).toEqual({ acquired: true, scanned: N, refreshed: 0, skipped: 0, inFlight: 0, failed: N });
    expect(job.warnings).toEqual([expect.stringMatching(folded('4003:REFRESH_FAILED \\(HTTP 503\\)'))]);
    expect(job.summary).toEqual([expect.stringContaining(`proactive refresh: 0 refreshed, 0 skipped, ${N} failed of ${N}; failures by cause: ${N} × 4003:REFRESH_FAILED (HTTP 503)`)]);
    expect(stack.server.refreshCalls).toBe(2 * N); // maxAttempts 2 each
    expect({ emitted: job.emitted, audited: job.audited }).toEqual({ emitted: N, audited: N });
  });

  it('a token endpoint dropping the connection: one warning naming the transport failure', async () => {
    stack.server.failTokenEndpoint({ kind: 'drop' });

    const job = await runJob();

    expect(job.result).toMatchObject({ scanned: N, failed: N });
    expect(job.warnings).toEqual([expect.stringMatching(folded('4003:REFRESH_FAILED \\(transport [A-Z][A-Z0-9_]+\\)'))]);
    expect({ emitted: job.emitted, audited: job.audited }).toEqual({ emitted: N, audited: N });
  });

  it('the provider refusing the OAuth client (it knows no such client id): one warning for OAUTH_CLIENT_REJECTED, with no client id, secret or token in any line', async () => {
    await registerTestProvider(stack, stack.server, 'idp', { clientId: 'client-id-the-provider-never-issued' }, stack.clientSecretId);
    try {
      const job = await runJob();

      expect(job.result).toMatchObject({ scanned: N, failed: N });
      expect(job.warnings).toEqual([expect.stringMatching(folded('4009:OAUTH_CLIENT_REJECTED \\(HTTP 401, OAuth error invalid_client\\)'))]);
      expect(job.summary).toEqual([expect.stringContaining(`; failures by cause: ${N} × 4009:OAUTH_CLIENT_REJECTED (HTTP 401, OAuth error invalid_client)`)]);
      expect({ emitted: job.emitted, audited: job.audited }).toEqual({ emitted: N, audited: N });
      const secrets = [...issued, stack.server.clientSecret, stack.server.clientId, 'client-id-the-provider-never-issued'];
      expect(logger.lines.filter((l) => secrets.some((s) => l.includes(s)))).toEqual([]);
    } finally {
      await registerTestProvider(stack, stack.server, 'idp', {}, stack.clientSecretId);
    }
  });

  it('the provider back: the next run refreshes every connection and says no failure', async () => {
    const job = await runJob();

    expect(job.result).toMatchObject({ scanned: N, refreshed: N, failed: 0 });
    expect(job.warnings).toEqual([]);
  });
});
