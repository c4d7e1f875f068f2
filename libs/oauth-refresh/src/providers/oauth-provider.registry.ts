import { Inject, Injectable, Logger } from '@nestjs/common';
import { OAUTH_REFRESH_RESOLVED_OPTIONS } from '../oauth-refresh.constants';
import type { ResolvedOAuthRefreshOptions } from '../oauth-refresh.options';
import { OAuthProviderNotRegisteredError, OAuthRefreshConfigurationError } from '../errors/oauth-refresh.errors';
import { foldUuid, IDENTIFIER_PATTERN, UUID_PATTERN } from '@app/common';
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

/** Credential ids are UUIDs (CredentialsService.store gives them): anything else can never be read. */
const CREDENTIAL_ID = UUID_PATTERN;

function tenantKey(tenantId: string, integrationId: string): string {
  return JSON.stringify([tenantId, integrationId]);
}

const PROVIDER_KEYS = new Set([
  'integrationId',
  'issuer',
  'tokenEndpoint',
  'clientId',
  'clientSecret',
  'clientAuthMethod',
  'scopes',
  'refreshAheadMs',
  'defaultExpiresInSeconds',
  'allowInsecureRequests',
  'requestTimeoutMs',
]);
const SECRET_REF_KEYS = new Set(['credentialId', 'tenantId']);

/** One problem of a provider configuration: the field (`[]` for the whole configuration) and what is wrong. Never its value. */
export interface ProviderConfigProblem {
  path: string[];
  message: string;
}

/**
 * Every problem of one provider configuration's own fields (the module defaults it falls back on are
 * checked with the module options). Messages name the field and what to fix, never a value: a
 * configuration may hold a client secret where a reference belongs.
 */
export function providerConfigProblems(config: unknown, tenantId?: string): ProviderConfigProblem[] {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    return [{ path: [], message: 'must be a provider configuration object' }];
  }
  const problems: ProviderConfigProblem[] = [];
  const add = (field: string | undefined, message: string) => problems.push({ path: field === undefined ? [] : field.split('.'), message });
  const c = config as Partial<OAuthProviderConfig>;
  // Key names, not values: naming an unknown one helps fix a typo.
  for (const key of Object.keys(c)) if (!PROVIDER_KEYS.has(key)) add(undefined, `Unrecognized key: "${key.slice(0, 64)}"`);
  if (typeof c.integrationId !== 'string' || !IDENTIFIER_PATTERN.test(c.integrationId)) add('integrationId', `must match ${IDENTIFIER_PATTERN.source}`);
  if (tenantId !== undefined && (typeof tenantId !== 'string' || !IDENTIFIER_PATTERN.test(tenantId))) add('tenantId', `must match ${IDENTIFIER_PATTERN.source}`);
  const allowInsecureRequests = c.allowInsecureRequests ?? false;
  if (typeof allowInsecureRequests !== 'boolean') add('allowInsecureRequests', 'must be a boolean');
  if ((c.issuer === undefined) === (c.tokenEndpoint === undefined)) add(undefined, 'give exactly one of issuer (discovery) or tokenEndpoint');
  for (const field of ['issuer', 'tokenEndpoint'] as const) {
    const v = c[field];
    if (v === undefined) continue;
    let url: URL | undefined;
    try {
      url = new URL(v);
    } catch {
      add(field, 'must be an absolute URL');
    }
    if (url && url.protocol !== 'https:' && !(url.protocol === 'http:' && allowInsecureRequests === true)) {
      add(field, 'must use https:// (http:// only with allowInsecureRequests, for tests)');
    }
    if (url && (url.username || url.password)) add(field, 'must not contain credentials');
  }
  if (typeof c.clientId !== 'string' || c.clientId.length === 0 || c.clientId.length > 512) add('clientId', 'must be a non-empty string (≤ 512 characters)');
  const clientAuthMethod = c.clientAuthMethod ?? 'client_secret_basic';
  if (!AUTH_METHODS.has(clientAuthMethod)) add('clientAuthMethod', `must be one of ${[...AUTH_METHODS].join(', ')}`);
  if (clientAuthMethod !== 'none') {
    const ref = c.clientSecret;
    if (!ref || typeof ref !== 'object' || typeof ref.credentialId !== 'string' || ref.credentialId.length === 0) {
      add('clientSecret', 'must be a reference { credentialId, tenantId? } to a stored credential (never the secret itself)');
    } else {
      if ('value' in ref || 'secret' in ref) add('clientSecret', 'holds a reference only; store the secret with CredentialsService and give its id');
      for (const key of Object.keys(ref)) {
        if (!SECRET_REF_KEYS.has(key) && key !== 'value' && key !== 'secret') add('clientSecret', `Unrecognized key: "${key.slice(0, 64)}" (a reference is { credentialId, tenantId? })`);
      }
      // A placeholder left from the docs would otherwise pass here and fail each refresh as "Credential not found".
      if (!CREDENTIAL_ID.test(ref.credentialId)) {
        add('clientSecret.credentialId', 'must be the id (a UUID) CredentialsService.store gave the stored client secret');
      }
      if (ref.tenantId === undefined && tenantId === undefined) {
        add('clientSecret.tenantId', 'required on an integration-wide registration (a system credential); omit it only when registering for one tenant');
      }
      if (ref.tenantId !== undefined && (typeof ref.tenantId !== 'string' || !IDENTIFIER_PATTERN.test(ref.tenantId))) {
        add('clientSecret.tenantId', `must match ${IDENTIFIER_PATTERN.source}`);
      }
    }
  } else if (c.clientSecret !== undefined) {
    add('clientSecret', 'must be omitted when clientAuthMethod is "none"');
  }
  const scopes: unknown = c.scopes ?? [];
  if (!Array.isArray(scopes) || scopes.some((s) => typeof s !== 'string' || !/^[\x21\x23-\x5B\x5D-\x7E]+$/.test(s))) {
    add('scopes', 'must be an array of scope tokens (no spaces or quotes)');
  }
  if (c.refreshAheadMs !== undefined && !validMs(c.refreshAheadMs, 0)) add('refreshAheadMs', REFRESH_AHEAD_PROBLEM);
  if (c.defaultExpiresInSeconds !== undefined && !validPositive(c.defaultExpiresInSeconds)) add('defaultExpiresInSeconds', EXPIRES_IN_PROBLEM);
  if (c.requestTimeoutMs !== undefined && !validPositive(c.requestTimeoutMs)) add('requestTimeoutMs', TIMEOUT_PROBLEM);
  return problems;
}

const REFRESH_AHEAD_PROBLEM = 'must be a number of milliseconds ≥ 0';
const EXPIRES_IN_PROBLEM = 'must be a positive number of seconds';
const TIMEOUT_PROBLEM = 'must be a positive number of milliseconds';
const validMs = (v: unknown, min: number) => typeof v === 'number' && Number.isFinite(v) && v >= min;
const validPositive = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0;

/** Applies defaults and validates one provider configuration. Throws OAuthRefreshConfigurationError listing every problem. */
export function resolveProviderConfig(
  config: OAuthProviderConfig,
  defaults: Pick<ResolvedOAuthRefreshOptions, 'refreshAheadMs' | 'defaultExpiresInSeconds' | 'requestTimeoutMs'>,
  tenantId?: string,
): ResolvedOAuthProvider {
  const problems = providerConfigProblems(config, tenantId).map((p) => (p.path.length ? `${p.path.join('.')}: ${p.message}` : p.message));
  const c = (config ?? {}) as Partial<OAuthProviderConfig>;
  const where = `provider "${typeof c.integrationId === 'string' ? c.integrationId.slice(0, 64) : '?'}"`;
  // The module defaults are validated with the module options; checked again for a direct call.
  const refreshAheadMs = c.refreshAheadMs ?? defaults.refreshAheadMs;
  if (c.refreshAheadMs === undefined && !validMs(refreshAheadMs, 0)) problems.push(`refreshAheadMs: ${REFRESH_AHEAD_PROBLEM}`);
  const defaultExpiresInSeconds = c.defaultExpiresInSeconds ?? defaults.defaultExpiresInSeconds;
  if (c.defaultExpiresInSeconds === undefined && !validPositive(defaultExpiresInSeconds)) problems.push(`defaultExpiresInSeconds: ${EXPIRES_IN_PROBLEM}`);
  const requestTimeoutMs = c.requestTimeoutMs ?? defaults.requestTimeoutMs;
  if (c.requestTimeoutMs === undefined && !validPositive(requestTimeoutMs)) problems.push(`requestTimeoutMs: ${TIMEOUT_PROBLEM}`);
  if (problems.length) {
    throw new OAuthRefreshConfigurationError(`Invalid OAuth ${where}:\n  - ${problems.join('\n  - ')}`);
  }
  return {
    integrationId: c.integrationId!,
    ...(tenantId !== undefined ? { tenantId } : {}),
    ...(c.issuer !== undefined ? { issuer: c.issuer } : {}),
    ...(c.tokenEndpoint !== undefined ? { tokenEndpoint: c.tokenEndpoint } : {}),
    clientId: c.clientId!,
    // Stored ids are lower case and looked up as given: an upper-case UUID (accepted above, as the routes take it) is folded.
    ...(c.clientSecret ? { clientSecret: { ...c.clientSecret, credentialId: foldUuid(c.clientSecret.credentialId) } } : {}),
    clientAuthMethod: c.clientAuthMethod ?? 'client_secret_basic',
    scopes: [...(c.scopes ?? [])],
    refreshAheadMs,
    defaultExpiresInSeconds,
    allowInsecureRequests: c.allowInsecureRequests ?? false,
    requestTimeoutMs,
  };
}
