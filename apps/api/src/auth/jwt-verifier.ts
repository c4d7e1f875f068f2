import { createRemoteJWKSet, JWTPayload, jwtVerify, JWTVerifyGetKey } from 'jose';
import { isCallerTenant } from './scopes';

export interface JwtAuthConfig {
  issuer: string;
  audience: string;
  jwksUrl: string;
  /** Claim holding the tenant id. */
  tenantClaim: string;
  /** Claim holding scopes: a space-delimited string (`scope`) or an array (`scp`). */
  scopeClaim: string;
  /** Accepted algorithms; `none` and HMAC are never accepted from a JWKS. */
  algorithms: string[];
}

export interface VerifiedToken {
  subject: string;
  tenantId: string;
  scopes: string[];
}

/** Stable codes of JwtVerifier's own refusals (jose's are `ERR_JWT_*`). */
export enum JwtClaimErrorCode {
  /** The claim is absent. */
  MISSING = 'JWT_CLAIM_MISSING',
  /** The claim is present but unusable: empty, or not a string. */
  INVALID = 'JWT_CLAIM_INVALID',
  /** The tenant claim is a string but no tenant a caller may be (not an identifier, or the reserved `_unauthenticated`). */
  NOT_A_TENANT = 'JWT_CLAIM_NOT_A_TENANT',
  /** The subject is longer than MAX_SUBJECT_LENGTH. */
  TOO_LONG = 'JWT_CLAIM_TOO_LONG',
  /** The subject holds control or format characters (MAX_SUBJECT_LENGTH's sibling: what the actor id may hold). */
  NOT_PRINTABLE = 'JWT_CLAIM_NOT_PRINTABLE',
}

/** The principal `jwt:<sub>` is the actor id of the audit rows and the libs' contexts, which take at most 256 characters. */
export const MAX_SUBJECT_LENGTH = 256 - 'jwt:'.length;
/**
 * Controls (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width), line/paragraph separators and
 * lone surrogates: in the actor id operators read in logs and audit exports they forge lines, run terminal sequences
 * or reverse the text.
 */
const UNPRINTABLE_SUBJECT = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

/**
 * A token jose accepted lacks a claim we need. `claim` is the claim's name, from our configuration;
 * the claim's value is never carried (it is the caller's data).
 */
export class JwtClaimError extends Error {
  constructor(
    readonly code: JwtClaimErrorCode,
    readonly claim: string,
  ) {
    super(
      code === JwtClaimErrorCode.MISSING
        ? `the token lacks the "${claim}" claim`
        : code === JwtClaimErrorCode.INVALID
          ? `the token's "${claim}" claim is empty or not a string`
          : code === JwtClaimErrorCode.TOO_LONG
            ? `the token's "${claim}" claim is longer than ${MAX_SUBJECT_LENGTH} characters`
            : code === JwtClaimErrorCode.NOT_PRINTABLE
              ? `the token's "${claim}" claim contains control or format characters`
              : `the token's "${claim}" claim is not a tenant id`,
    );
    this.name = 'JwtClaimError';
  }
}

/** Verifies bearer JWTs: signature against the issuer's JWKS (cached by jose), issuer, audience, expiry (required). */
export class JwtVerifier {
  private readonly jwks: JWTVerifyGetKey;

  constructor(private readonly config: JwtAuthConfig, jwks?: JWTVerifyGetKey) {
    this.jwks = jwks ?? createRemoteJWKSet(new URL(config.jwksUrl), { cooldownDuration: 30_000, timeoutDuration: 5_000 });
  }

  async verify(token: string): Promise<VerifiedToken> {
    const { payload } = await jwtVerify(token, this.jwks, {
      issuer: this.config.issuer,
      audience: this.config.audience,
      algorithms: this.config.algorithms,
      clockTolerance: 30,
      // jose checks `exp` only when present: a token without one, once leaked, would never stop working.
      requiredClaims: ['exp'],
    });
    const tenant = payload[this.config.tenantClaim];
    if (tenant === undefined) throw new JwtClaimError(JwtClaimErrorCode.MISSING, this.config.tenantClaim);
    if (typeof tenant !== 'string' || tenant.length === 0) throw new JwtClaimError(JwtClaimErrorCode.INVALID, this.config.tenantClaim);
    if (!isCallerTenant(tenant)) throw new JwtClaimError(JwtClaimErrorCode.NOT_A_TENANT, this.config.tenantClaim);
    // jose checks `sub` only when asked for one subject, and not its type: RFC 7519 makes it a string
    // (a number would become the principal "jwt:123"). An empty one is refused like a missing one.
    const sub: unknown = payload.sub;
    if (typeof sub !== 'string' || sub.length === 0) throw new JwtClaimError(sub === undefined ? JwtClaimErrorCode.MISSING : JwtClaimErrorCode.INVALID, 'sub');
    if (sub.length > MAX_SUBJECT_LENGTH) throw new JwtClaimError(JwtClaimErrorCode.TOO_LONG, 'sub');
    if (UNPRINTABLE_SUBJECT.test(sub)) throw new JwtClaimError(JwtClaimErrorCode.NOT_PRINTABLE, 'sub');
    return { subject: sub, tenantId: tenant, scopes: scopesOf(payload, this.config.scopeClaim) };
  }
}

function scopesOf(payload: JWTPayload, claim: string): string[] {
  const raw = payload[claim];
  if (typeof raw === 'string') return raw.split(' ').filter(Boolean);
  if (Array.isArray(raw)) return raw.filter((s): s is string => typeof s === 'string');
  return [];
}
