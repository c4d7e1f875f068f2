import { createRemoteJWKSet, JWTPayload, jwtVerify, JWTVerifyGetKey } from 'jose';

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

/** Verifies bearer JWTs: signature against the issuer's JWKS (cached by jose), issuer, audience, expiry. */
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
    });
    const tenant = payload[this.config.tenantClaim];
    if (typeof tenant !== 'string' || tenant.length === 0) {
      throw new Error(`token has no "${this.config.tenantClaim}" claim`);
    }
    if (!payload.sub) throw new Error('token has no "sub" claim');
    return { subject: payload.sub, tenantId: tenant, scopes: scopesOf(payload, this.config.scopeClaim) };
  }
}

function scopesOf(payload: JWTPayload, claim: string): string[] {
  const raw = payload[claim];
  if (typeof raw === 'string') return raw.split(' ').filter(Boolean);
  if (Array.isArray(raw)) return raw.filter((s): s is string => typeof s === 'string');
  return [];
}
