import type { Logger } from '@nestjs/common';
import type { TokenEndpointFailure } from '../client/oauth-token-client';
import { OAuthRefreshConfigurationError } from '../errors/oauth-refresh.errors';
import type { ResolvedOAuthProvider } from '../providers/oauth-provider.config';
import { endpointFacts, isProviderLevelFailure, refreshFailureCause } from './failure-cause';
import { describeRefreshError } from './refresh-support';

/** Connections a folded warning names; the others are counted. */
const EXAMPLES = 3;

/** The failures of one provider registration on one cause in a run: refreshes that failed, or that worked only when retried. */
interface Folded {
  where: string;
  outcome: 'failed' | 'retried';
  cause: string;
  count: number;
  examples: string[];
}

/**
 * The failed refreshes of one proactive run, as its log says them. A failure of the provider's (isProviderLevelFailure:
 * its token endpoint down, refusing the OAuth client…) is the same news for each of its connections: one warning per
 * provider registration and cause (`reportFolded`, at the end of the run), each connection's line at debug. A
 * connection's own failure (invalid_grant…) is a warning at once, as before; one on the provider's client secret
 * (OAUTH_REFRESH_CONFIGURATION) is at debug, said once per cooldown of the secret where it is met. All are counted by
 * cause for the run's summary line. A refresh that worked only after its token endpoint failed and was retried (each
 * retry a warning before, at debug now) is folded the same way (`recordRetried`): a provider failing every first
 * request is still said.
 */
export class ProactiveRefreshFailures {
  private readonly byCause = new Map<string, number>();
  private readonly folded = new Map<string, Folded>();

  constructor(private readonly logger: Logger) {}

  record(tenantId: string, provider: ResolvedOAuthProvider, connectionId: string, e: unknown): void {
    const line = `proactive refresh of connection ${connectionId} (tenant ${tenantId}, integration ${provider.integrationId}) failed: ${describeRefreshError(e)}`;
    const cause = refreshFailureCause(e);
    if (e instanceof OAuthRefreshConfigurationError) {
      this.count(`${cause} (a provider's unusable client secret, said once per cooldown)`);
      this.logger.debug(line);
      return;
    }
    this.count(cause);
    if (!isProviderLevelFailure(e)) {
      this.logger.warn(line);
      return;
    }
    this.logger.debug(line);
    this.fold(tenantId, provider, connectionId, 'failed', cause);
  }

  /** A refresh that worked after its token endpoint failed (`first`, the first failure retried) and was asked again. */
  recordRetried(tenantId: string, provider: ResolvedOAuthProvider, connectionId: string, first: TokenEndpointFailure): void {
    const facts = endpointFacts(first);
    this.fold(tenantId, provider, connectionId, 'retried', `the token endpoint failed first${facts.length > 0 ? ` (${facts.join(', ')})` : ''}`);
  }

  /** Says the provider-level failures and retries recorded so far: one warning per provider registration and cause. */
  reportFolded(): void {
    for (const f of this.folded.values()) {
      const more = f.count > f.examples.length ? ` and ${f.count - f.examples.length} more` : '';
      const what = f.outcome === 'failed' ? `failed on the provider's side: ${f.cause}` : `succeeded only after a retry: ${f.cause}`;
      const atDebug = f.outcome === 'failed' ? "each connection's at debug" : 'each retry at debug';
      this.logger.warn(
        `proactive refresh of ${f.count} connection${f.count === 1 ? '' : 's'} of ${f.where} ${what}; connections ${f.examples.join(', ')}${more} (one line per run and cause; ${atDebug})`,
      );
    }
    this.folded.clear();
  }

  /** The summary line's count of failures by cause (`; failures by cause: 38 × <cause>; 2 × <cause>`), most first; '' without failures. */
  summary(): string {
    if (this.byCause.size === 0) return '';
    const counts = [...this.byCause].sort((a, b) => b[1] - a[1]).map(([cause, n]) => `${n} × ${cause}`);
    return `; failures by cause: ${counts.join('; ')}`;
  }

  private fold(tenantId: string, provider: ResolvedOAuthProvider, connectionId: string, outcome: Folded['outcome'], cause: string): void {
    const key = JSON.stringify([provider.tenantId ?? null, provider.integrationId, outcome, cause]);
    let folded = this.folded.get(key);
    if (!folded) {
      const own = provider.tenantId !== undefined ? ` (tenant ${provider.tenantId}'s own registration)` : '';
      this.folded.set(key, (folded = { where: `integration "${provider.integrationId}"${own}`, outcome, cause, count: 0, examples: [] }));
    }
    folded.count++;
    if (folded.examples.length < EXAMPLES) folded.examples.push(`${connectionId} (tenant ${tenantId})`);
  }

  private count(cause: string): void {
    this.byCause.set(cause, (this.byCause.get(cause) ?? 0) + 1);
  }
}
