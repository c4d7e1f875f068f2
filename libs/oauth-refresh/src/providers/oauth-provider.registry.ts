import { Inject, Injectable, Logger } from '@nestjs/common';
import { OAUTH_REFRESH_RESOLVED_OPTIONS } from '../oauth-refresh.constants';
import type { ResolvedOAuthRefreshOptions } from '../oauth-refresh.options';
import { OAuthProviderNotRegisteredError, OAuthRefreshConfigurationError } from '../errors/oauth-refresh.errors';
import { IDENTIFIER_PATTERN } from '../validation';
import type { OAuthProviderConfig, ResolvedOAuthProvider } from './oauth-provider.config';

const AUTH_METHODS = new Set(['client_secret_basic', 'client_secret_post', 'none']);

/**
 * OAuth providers by integration: those of the module option `providers`, plus any registered at
 * runtime. A tenant-scoped registration (a tenant's own OAuth app) overrides the integration-wide
 * one for that tenant. Registrations are per process: register on every replica (e.g. at startup).
 */
@Injectable()
export class OAuthProviderRegistry {
  private readonly logger = new Logger(OAuthProviderRegistry.name);
  private readonly global = new Map<string, ResolvedOAuthProvider>();
  private readonly perTenant = new Map<string, ResolvedOAuthProvider>();

  constructor(@Inject(OAUTH_REFRESH_RESOLVED_OPTIONS) private readonly options: ResolvedOAuthRefreshOptions) {
    for (const p of options.providers) this.register(p);
  }

  /** Adds or replaces a provider. Throws OAuthRefreshConfigurationError listing every problem. */
  register(config: OAuthProviderConfig, scope: { tenantId?: string } = {}): ResolvedOAuthProvider {
    const resolved = resolveProviderConfig(config, this.options, scope.tenantId);
    const key = scope.tenantId === undefined ? resolved.integrationId : tenantKey(scope.tenantId, resolved.integrationId);
    (scope.tenantId === undefined ? this.global : this.perTenant).set(key, resolved);
    this.logger.log(`registered OAuth provider for integration "${resolved.integrationId}"${scope.tenantId ? ` (tenant ${scope.tenantId})` : ''}`);
    return resolved;
  }

  /** Removes a registration; true when one existed. */
  unregister(integrationId: string, scope: { tenantId?: string } = {}): boolean {
    return scope.tenantId === undefined ? this.global.delete(integrationId) : this.perTenant.delete(tenantKey(scope.tenantId, integrationId));
  }

  /** The provider for a tenant's integration (tenant-scoped first), or undefined. */
  find(tenantId: string, integrationId: string): ResolvedOAuthProvider | undefined {
    return this.perTenant.get(tenantKey(tenantId, integrationId)) ?? this.global.get(integrationId);
  }

  /** Like `find`, but throws OAuthProviderNotRegisteredError. */
  get(tenantId: string, integrationId: string): ResolvedOAuthProvider {
    const p = this.find(tenantId, integrationId);
    if (!p) throw new OAuthProviderNotRegisteredError(integrationId);
    return p;
  }

  /** Integration-wide registrations (tenant-scoped ones are not listed). */
  list(): ResolvedOAuthProvider[] {
    return [...this.global.values()];
  }

  /** The largest refresh-ahead window of any registration (what the proactive job scans for). */
  maxRefreshAheadMs(): number {
    let max = this.options.refreshAheadMs;
    for (const p of [...this.global.values(), ...this.perTenant.values()]) max = Math.max(max, p.refreshAheadMs);
    return max;
  }
}

function tenantKey(tenantId: string, integrationId: string): string {
  return JSON.stringify([tenantId, integrationId]);
}

/** Applies defaults and validates one provider configuration. */
export function resolveProviderConfig(
  config: OAuthProviderConfig,
  defaults: Pick<ResolvedOAuthRefreshOptions, 'refreshAheadMs' | 'defaultExpiresInSeconds' | 'requestTimeoutMs'>,
  tenantId?: string,
): ResolvedOAuthProvider {
  const problems: string[] = [];
  const c = (config ?? {}) as Partial<OAuthProviderConfig>;
  const where = `provider "${typeof c.integrationId === 'string' ? c.integrationId.slice(0, 64) : '?'}"`;
  if (typeof c.integrationId !== 'string' || !IDENTIFIER_PATTERN.test(c.integrationId)) {
    problems.push(`integrationId: must match ${IDENTIFIER_PATTERN.source}`);
  }
  if (tenantId !== undefined && (typeof tenantId !== 'string' || !IDENTIFIER_PATTERN.test(tenantId))) {
    problems.push(`tenantId: must match ${IDENTIFIER_PATTERN.source}`);
  }
  const allowInsecureRequests = c.allowInsecureRequests ?? false;
  if (typeof allowInsecureRequests !== 'boolean') problems.push('allowInsecureRequests: must be a boolean');
  if ((c.issuer === undefined) === (c.tokenEndpoint === undefined)) {
    problems.push('give exactly one of issuer (discovery) or tokenEndpoint');
  }
  for (const field of ['issuer', 'tokenEndpoint'] as const) {
    const v = c[field];
    if (v === undefined) continue;
    let url: URL | undefined;
    try {
      url = new URL(v);
    } catch {
      problems.push(`${field}: must be an absolute URL`);
    }
    if (url && url.protocol !== 'https:' && !(url.protocol === 'http:' && allowInsecureRequests === true)) {
      problems.push(`${field}: must use https:// (http:// only with allowInsecureRequests, for tests)`);
    }
    if (url && (url.username || url.password)) problems.push(`${field}: must not contain credentials`);
  }
  if (typeof c.clientId !== 'string' || c.clientId.length === 0 || c.clientId.length > 512) problems.push('clientId: must be a non-empty string (≤ 512 characters)');
  const clientAuthMethod = c.clientAuthMethod ?? 'client_secret_basic';
  if (!AUTH_METHODS.has(clientAuthMethod)) problems.push(`clientAuthMethod: must be one of ${[...AUTH_METHODS].join(', ')}`);
  if (clientAuthMethod !== 'none') {
    const ref = c.clientSecret;
    if (!ref || typeof ref !== 'object' || typeof ref.credentialId !== 'string' || ref.credentialId.length === 0) {
      problems.push('clientSecret: must be a reference { credentialId, tenantId? } to a stored credential (never the secret itself)');
    } else {
      if ('value' in ref || 'secret' in ref) problems.push('clientSecret: holds a reference only; store the secret with CredentialsService and give its id');
      if (ref.tenantId === undefined && tenantId === undefined) {
        problems.push('clientSecret.tenantId: required on an integration-wide registration (a system credential); omit it only when registering for one tenant');
      }
      if (ref.tenantId !== undefined && !IDENTIFIER_PATTERN.test(ref.tenantId)) problems.push(`clientSecret.tenantId: must match ${IDENTIFIER_PATTERN.source}`);
    }
  } else if (c.clientSecret !== undefined) {
    problems.push('clientSecret: must be omitted when clientAuthMethod is "none"');
  }
  const scopes = c.scopes ?? [];
  if (!Array.isArray(scopes) || scopes.some((s) => typeof s !== 'string' || !/^[\x21\x23-\x5B\x5D-\x7E]+$/.test(s))) {
    problems.push('scopes: must be an array of scope tokens (no spaces or quotes)');
  }
  const refreshAheadMs = c.refreshAheadMs ?? defaults.refreshAheadMs;
  if (!(Number.isFinite(refreshAheadMs) && refreshAheadMs >= 0)) problems.push('refreshAheadMs: must be a number of milliseconds ≥ 0');
  const defaultExpiresInSeconds = c.defaultExpiresInSeconds ?? defaults.defaultExpiresInSeconds;
  if (!(Number.isFinite(defaultExpiresInSeconds) && defaultExpiresInSeconds > 0)) problems.push('defaultExpiresInSeconds: must be a positive number of seconds');
  const requestTimeoutMs = c.requestTimeoutMs ?? defaults.requestTimeoutMs;
  if (!(Number.isFinite(requestTimeoutMs) && requestTimeoutMs > 0)) problems.push('requestTimeoutMs: must be a positive number of milliseconds');
  if (problems.length) {
    throw new OAuthRefreshConfigurationError(`Invalid OAuth ${where}:\n  - ${problems.join('\n  - ')}`);
  }
  return {
    integrationId: c.integrationId!,
    ...(tenantId !== undefined ? { tenantId } : {}),
    ...(c.issuer !== undefined ? { issuer: c.issuer } : {}),
    ...(c.tokenEndpoint !== undefined ? { tokenEndpoint: c.tokenEndpoint } : {}),
    clientId: c.clientId!,
    ...(c.clientSecret ? { clientSecret: { ...c.clientSecret } } : {}),
    clientAuthMethod,
    scopes: [...scopes],
    refreshAheadMs,
    defaultExpiresInSeconds,
    allowInsecureRequests,
    requestTimeoutMs,
  };
}
