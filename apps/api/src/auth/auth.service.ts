import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { APP_CONFIG, AppConfig } from '../config/app.config';
import { ApiKeyEntry, ApiKeyVerifier, generateApiKey, sha256Hex } from './api-keys';
import { JwtClaimError, JwtClaimErrorCode, JwtVerifier, MAX_SUBJECT_LENGTH } from './jwt-verifier';
import { CALLER_TENANT_RULE, Principal, Scope } from './scopes';

export class AuthenticationFailed extends Error {}

/** Turns a request's credentials (bearer JWT or X-API-Key) into a Principal. */
@Injectable()
export class AuthService implements OnModuleInit {
  private readonly logger = new Logger(AuthService.name);
  private readonly jwt?: JwtVerifier;
  private apiKeys: ApiKeyVerifier;
  /** One principal per API key entry (immutable), not a new one and a new Set per request. */
  private readonly apiKeyPrincipals = new WeakMap<ApiKeyEntry, Principal>();

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.jwt = config.auth.jwt ? new JwtVerifier(config.auth.jwt) : undefined;
    this.apiKeys = new ApiKeyVerifier(config.auth.apiKeys);
  }

  onModuleInit(): void {
    const file = this.config.auth.devApiKeyFile;
    if (!file) return;
    this.apiKeys = new ApiKeyVerifier([...this.config.auth.apiKeys, this.devKeyEntry(file)]);
    this.logger.warn(
      `No JWT issuer or API keys configured: a development admin API key for tenant "dev" is in ${file}. ` +
        'Send it as the X-API-Key header. Configure AUTH_JWT_* or AUTH_API_KEYS for real use.',
    );
  }

  /** Reuses the key in the file, or creates one (only its hash stays in memory). */
  private devKeyEntry(file: string): ApiKeyEntry {
    if (existsSync(file)) {
      const key = readFileSync(file, 'utf8').trim();
      const m = /^cvk_([A-Za-z0-9-]+)_(.+)$/.exec(key);
      if (m) return { id: m[1], tenant: 'dev', scopes: [Scope.ADMIN], sha256: sha256Hex(m[2]) };
    }
    const { key, entry } = generateApiKey('dev', 'dev', [Scope.ADMIN]);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${key}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    return entry;
  }

  async authenticate(headers: Record<string, string | string[] | undefined>): Promise<Principal> {
    const apiKey = headers['x-api-key'];
    const authz = headers.authorization;
    if (typeof apiKey === 'string' && apiKey) {
      // One credential per request (RFC 6750 §2): with two, which one acts would be the host's silent choice.
      if (typeof authz === 'string' && BEARER.test(authz)) throw new AuthenticationFailed('send one credential: X-API-Key or Authorization: Bearer, not both');
      const entry = this.apiKeys.verify(apiKey);
      if (!entry) throw new AuthenticationFailed('invalid API key');
      let principal = this.apiKeyPrincipals.get(entry);
      if (principal === undefined) {
        principal = Object.freeze({ id: `api-key:${entry.id}`, tenantId: entry.tenant, scopes: new Set(entry.scopes), method: 'api-key' as const });
        this.apiKeyPrincipals.set(entry, principal);
      }
      return principal;
    }
    if (typeof authz === 'string' && BEARER.test(authz)) {
      if (!this.jwt) throw new AuthenticationFailed('bearer tokens are not accepted: no JWT issuer is configured');
      try {
        const t = await this.jwt.verify(authz.replace(BEARER, '').trim());
        return { id: `jwt:${t.subject}`, tenantId: t.tenantId, scopes: new Set(t.scopes), method: 'jwt' };
      } catch (e) {
        throw new AuthenticationFailed(`invalid bearer token: ${bearerFailure(e)}`);
      }
    }
    throw new AuthenticationFailed('missing credentials: send X-API-Key or Authorization: Bearer <JWT>');
  }
}

const BEARER = /^Bearer\s+/i;

/** Fixed reasons per `jose` error code: a client learns why its token was refused, in our words. */
const JOSE_REASONS: Record<string, string> = {
  ERR_JWT_EXPIRED: 'the token has expired',
  ERR_JWS_SIGNATURE_VERIFICATION_FAILED: 'signature verification failed',
  ERR_JWS_INVALID: 'the token is malformed',
  ERR_JWT_INVALID: 'the token is malformed',
  ERR_JOSE_ALG_NOT_ALLOWED: "the token's signing algorithm is not accepted",
  ERR_JOSE_NOT_SUPPORTED: "the token's signing algorithm or key type is not supported",
  ERR_JWKS_NO_MATCHING_KEY: "no key of the issuer's key set matches the token",
  ERR_JWKS_MULTIPLE_MATCHING_KEYS: "several keys of the issuer's key set match the token",
  ERR_JWKS_TIMEOUT: "the issuer's key set could not be fetched in time",
  ERR_JWKS_INVALID: "the issuer's key set is invalid",
  ERR_JWK_INVALID: "the issuer's key set is invalid",
};
const CLAIM_NAME = /^[A-Za-z][A-Za-z0-9_:.-]{0,63}$/;
/**
 * JwtVerifier's own refusals, by code (exhaustive: a new code needs its words). An empty or
 * non-string claim reads as a missing one, as it always has to clients.
 */
const OWN_CLAIM_REASONS: Record<JwtClaimErrorCode, (claim: string) => string> = {
  [JwtClaimErrorCode.MISSING]: (claim) => `token has no "${claim}" claim`,
  [JwtClaimErrorCode.INVALID]: (claim) => `token has no "${claim}" claim`,
  [JwtClaimErrorCode.NOT_A_TENANT]: (claim) => `the "${claim}" claim is not a tenant id (${CALLER_TENANT_RULE})`,
  [JwtClaimErrorCode.TOO_LONG]: (claim) => `the "${claim}" claim is longer than ${MAX_SUBJECT_LENGTH} characters`,
  [JwtClaimErrorCode.NOT_PRINTABLE]: (claim) => `the "${claim}" claim contains control or format characters`,
};

/**
 * Why a bearer token was refused, for the 401 body: never a library's message, which can quote the
 * token's claims or the key set's URL. A claim name is safe to repeat; its value is not.
 */
export function bearerFailure(e: unknown): string {
  // The claim's name comes from our configuration; checked anyway, as the 401 body repeats it.
  if (e instanceof JwtClaimError && Object.hasOwn(OWN_CLAIM_REASONS, e.code) && CLAIM_NAME.test(e.claim)) return OWN_CLAIM_REASONS[e.code](e.claim);
  const err = (e ?? {}) as { code?: unknown; claim?: unknown; reason?: unknown };
  if (err.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
    const claim = typeof err.claim === 'string' && CLAIM_NAME.test(err.claim) ? err.claim : undefined;
    if (!claim) return 'a claim failed validation';
    return err.reason === 'missing' ? `the "${claim}" claim is missing` : `the "${claim}" claim is not accepted`;
  }
  if (typeof err.code === 'string' && Object.hasOwn(JOSE_REASONS, err.code)) return JOSE_REASONS[err.code];
  return 'the token could not be verified';
}
