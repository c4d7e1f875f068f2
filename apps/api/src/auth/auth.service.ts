import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { APP_CONFIG, AppConfig } from '../config/app.config';
import { ApiKeyEntry, ApiKeyVerifier, generateApiKey, sha256Hex } from './api-keys';
import { JwtVerifier } from './jwt-verifier';
import { Principal, Scope } from './scopes';

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
    if (typeof apiKey === 'string' && apiKey) {
      const entry = this.apiKeys.verify(apiKey);
      if (!entry) throw new AuthenticationFailed('invalid API key');
      let principal = this.apiKeyPrincipals.get(entry);
      if (principal === undefined) {
        principal = Object.freeze({ id: `api-key:${entry.id}`, tenantId: entry.tenant, scopes: new Set(entry.scopes), method: 'api-key' as const });
        this.apiKeyPrincipals.set(entry, principal);
      }
      return principal;
    }
    const authz = headers.authorization;
    if (typeof authz === 'string' && /^Bearer\s+/i.test(authz)) {
      if (!this.jwt) throw new AuthenticationFailed('bearer tokens are not accepted: no JWT issuer is configured');
      try {
        const t = await this.jwt.verify(authz.replace(/^Bearer\s+/i, '').trim());
        return { id: `jwt:${t.subject}`, tenantId: t.tenantId, scopes: new Set(t.scopes), method: 'jwt' };
      } catch (e) {
        throw new AuthenticationFailed(`invalid bearer token: ${(e as Error).message}`);
      }
    }
    throw new AuthenticationFailed('missing credentials: send X-API-Key or Authorization: Bearer <JWT>');
  }
}
