import { createLocalJWKSet, createRemoteJWKSet, JSONWebKeySet, jwtVerify, JWTVerifyGetKey } from 'jose';
import { errors, KeyVaultHttpError } from './errors';

export type AuthOptions =
  | { mode: 'any' }
  | { mode: 'static'; token: string }
  | { mode: 'jwt'; issuer: string; audience?: string; jwksUri?: string; jwks?: object };

/** Audiences Azure AD puts in tokens for Key Vault. */
export const KEY_VAULT_AUDIENCES = ['https://vault.azure.net', 'https://vault.azure.net/', 'cfa8b339-82a2-471a-a3c9-0fc0be7a4093'];

export function validateAuthOptions(auth: AuthOptions): void {
  if (auth.mode === 'any') return;
  if (auth.mode === 'static') {
    if (typeof auth.token !== 'string' || auth.token.length === 0) throw new TypeError("auth.token is required for auth mode 'static'");
    return;
  }
  if (auth.mode === 'jwt') {
    if (typeof auth.issuer !== 'string' || !auth.issuer) throw new TypeError("auth.issuer is required for auth mode 'jwt'");
    if (!auth.jwks && !auth.jwksUri) throw new TypeError("auth.jwks or auth.jwksUri is required for auth mode 'jwt'");
    return;
  }
  throw new TypeError(`auth.mode must be 'any', 'static' or 'jwt' (got ${JSON.stringify((auth as { mode: unknown }).mode)})`);
}

/** The `WWW-Authenticate` challenge Key Vault sends on a 401. */
export function challengeHeader(tenantId: string): string {
  return `Bearer authorization="https://login.microsoftonline.com/${tenantId}", resource="https://vault.azure.net"`;
}

/** Extracts the bearer token, or undefined when the header is missing or not a bearer. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : undefined;
}

/** Verifies bearer tokens according to the configured mode. */
export class Authenticator {
  private readonly keySet?: JWTVerifyGetKey;

  constructor(private readonly options: AuthOptions) {
    validateAuthOptions(options);
    if (options.mode === 'jwt') {
      this.keySet = options.jwks
        ? createLocalJWKSet(options.jwks as JSONWebKeySet)
        : createRemoteJWKSet(new URL(options.jwksUri!));
    }
  }

  /** Resolves when the token is acceptable; throws a 401 KeyVaultHttpError otherwise. */
  async verify(token: string): Promise<void> {
    const o = this.options;
    if (o.mode === 'any') return;
    if (o.mode === 'static') {
      if (token !== o.token) throw errors.unauthorized('AKV10032: Invalid token: the token is not the one this emulator accepts.');
      return;
    }
    if (o.mode === 'jwt') {
      try {
        await jwtVerify(token, this.keySet!, { issuer: o.issuer, audience: o.audience ?? KEY_VAULT_AUDIENCES });
      } catch (err) {
        if (err instanceof KeyVaultHttpError) throw err;
        const reason = (err as { code?: string }).code ?? 'ERR_JWT_INVALID';
        throw errors.unauthorized(`AKV10022: Invalid token (${reason}).`);
      }
    }
  }
}
