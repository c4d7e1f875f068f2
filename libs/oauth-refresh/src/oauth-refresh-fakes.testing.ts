/**
 * Fakes of the lib's I/O seams for unit specs: an in-memory OAuthTokenStore for one connection and a
 * scripted OAuthTokenClient. Bound to their DI tokens in `Test.createTestingModule`; never in an int-spec.
 */
import { EventEmitter2 } from '@nestjs/event-emitter';
import { Test } from '@nestjs/testing';
import { AuditService, type AuditEventInput } from '@app/audit';
import { type DistributedLock, InProcessLock, type ManualClock, type OperationContext } from '@app/common';
import { OAuthTokenClient, OAuthTokenSet } from './client/oauth-token-client';
import { OAUTH_REFRESH_CLOCK, OAUTH_REFRESH_LOCK, OAUTH_REFRESH_RESOLVED_OPTIONS } from './oauth-refresh.constants';
import { resolveOAuthRefreshOptions } from './oauth-refresh.options';
import { OAuthRefreshService } from './oauth-refresh.service';
import type { ResolvedOAuthProvider } from './providers/oauth-provider.config';
import { OAuthProviderRegistry } from './providers/oauth-provider.registry';
import { OAuthRefreshCooldowns } from './store/oauth-refresh-cooldowns';
import { ConnectionTokens, DueAccessToken, DuePageCursor, OAuthTokenStore, PendingRefreshToken, StoredToken, TokenWrite } from './store/oauth-token-store';

/** The credential id the fakes' provider `idp` names as its client secret (in tenant `sys`). */
export const FAKE_CLIENT_SECRET_ID = '11111111-2222-4333-8444-555555555555';

/** What `serviceOnFakes` binds: the fakes, and optionally an event bus and shared cooldowns. */
export interface FakeServiceDeps {
  clock: ManualClock;
  store: OAuthTokenStore;
  client: OAuthTokenClient;
  /** Stands for AuditService: what the lib records. */
  audit: { record(e: AuditEventInput): Promise<unknown> };
  events?: EventEmitter2;
  sharedCooldowns?: OAuthRefreshCooldowns;
  /** The lock (OAUTH_REFRESH_LOCK); an InProcessLock without one. */
  lock?: DistributedLock;
}

/**
 * A fresh OAuthRefreshService (a new testing module: no in-memory state) on the given fakes: one provider `idp`
 * (token endpoint https://idp.example/token, client secret FAKE_CLIENT_SECRET_ID of tenant `sys`), retries of 1–2 ms,
 * no proactive job, unless `overrides` say otherwise.
 */
export async function serviceOnFakes(deps: FakeServiceDeps, overrides: Parameters<typeof resolveOAuthRefreshOptions>[0] = {}): Promise<OAuthRefreshService> {
  const options = resolveOAuthRefreshOptions({
    providers: [{ integrationId: 'idp', tokenEndpoint: 'https://idp.example/token', clientId: 'cid', clientSecret: { tenantId: 'sys', credentialId: FAKE_CLIENT_SECRET_ID } }],
    retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2 },
    proactive: { enabled: false },
    ...overrides,
  });
  const moduleRef = await Test.createTestingModule({
    providers: [
      OAuthRefreshService,
      OAuthProviderRegistry,
      { provide: OAUTH_REFRESH_RESOLVED_OPTIONS, useValue: options },
      { provide: OAUTH_REFRESH_LOCK, useValue: deps.lock ?? new InProcessLock() },
      { provide: OAUTH_REFRESH_CLOCK, useValue: deps.clock },
      { provide: OAuthTokenStore, useValue: deps.store },
      { provide: OAuthTokenClient, useValue: deps.client },
      { provide: AuditService, useValue: deps.audit },
      ...(deps.events ? [{ provide: EventEmitter2, useValue: deps.events }] : []),
      ...(deps.sharedCooldowns ? [{ provide: OAuthRefreshCooldowns, useValue: deps.sharedCooldowns }] : []),
    ],
  }).compile();
  return moduleRef.get(OAuthRefreshService);
}

/** One connection's tokens in memory, with version bookkeeping like the real store. */
export class FakeTokenStore extends OAuthTokenStore {
  access?: StoredToken & { value: string };
  refresh?: StoredToken & { value: string };
  reauthMarks = 0;
  /** Make the next N rotations of the refresh token fail (e.g. the vault is throttling). */
  failRefreshWrites = 0;
  /** A durable place for pending refresh tokens (like CredentialsTokenStore's); off: the base class's "none". */
  pendingSupported = false;
  pending?: PendingRefreshToken & { value: string };
  pendingDeletes = 0;
  /** What a failing refresh-token write throws (default: an untyped error). */
  writeError: () => Error = () => new Error('vault unavailable');
  /** Thrown by savePendingRefreshToken / markReauthRequired when set. */
  pendingError?: Error;
  markError?: Error;
  constructor(private readonly clock: ManualClock) {
    super();
  }
  async load(): Promise<ConnectionTokens> {
    return {
      ...(this.access ? { access: { ...this.access } } : {}),
      ...(this.refresh ? { refresh: { ...this.refresh } } : {}),
      ...(this.pending ? { pendingRefresh: { ...this.pending } } : {}),
    };
  }
  async readValue(_ctx: OperationContext, token: StoredToken): Promise<string> {
    if (token.credentialId === this.pending?.credentialId) return this.pending.value;
    return token.credentialId === this.access?.credentialId ? this.access.value : this.refresh!.value;
  }
  override async savePendingRefreshToken(_c: OperationContext, _i: string, _n: string, refresh: StoredToken, write: TokenWrite): Promise<PendingRefreshToken | undefined> {
    if (this.pendingError) throw this.pendingError;
    if (!this.pendingSupported) return undefined;
    this.pending = { ...this.write(this.pending, 'pending-id', write), basedOnVersion: refresh.version };
    return { ...this.pending };
  }
  override async deletePendingRefreshToken(_c: OperationContext, pending: PendingRefreshToken): Promise<void> {
    if (this.pending?.credentialId === pending.credentialId) this.pending = undefined;
    this.pendingDeletes++;
  }
  /** Value reads of the client secret (each one audited by the real store), and what they throw when set. */
  clientSecretReads = 0;
  clientSecretError?: () => Error;
  async readClientSecret(_c: OperationContext): Promise<string> {
    this.clientSecretReads++;
    if (this.clientSecretError) throw this.clientSecretError();
    return 'client-secret';
  }
  /** Whether checkClientSecret can tell (as CredentialsTokenStore's can); checks made. */
  clientSecretCheckable = false;
  clientSecretChecks = 0;
  override async checkClientSecret(): Promise<boolean | undefined> {
    if (!this.clientSecretCheckable) return undefined;
    this.clientSecretChecks++;
    if (this.clientSecretError) throw this.clientSecretError();
    return true;
  }
  async save(_c: OperationContext, _i: string, _n: string, access: TokenWrite, refresh?: TokenWrite): Promise<ConnectionTokens> {
    this.access = this.write(this.access, 'access-id', access);
    if (refresh) this.refresh = this.write(this.refresh, 'refresh-id', refresh);
    return this.load();
  }
  async rotate(_c: OperationContext, token: StoredToken, write: TokenWrite & { expectedRowVersion: number }): Promise<StoredToken> {
    const isAccess = token.credentialId === this.access?.credentialId;
    if (!isAccess && this.failRefreshWrites > 0) {
      this.failRefreshWrites--;
      throw this.writeError();
    }
    const next = this.write(isAccess ? this.access : this.refresh, token.credentialId, write);
    if (isAccess) this.access = next;
    else this.refresh = next;
    return { ...next };
  }
  async markReauthRequired(): Promise<void> {
    if (this.markError) throw this.markError;
    this.reauthMarks++;
    if (this.access) this.access.reauthRequired = true;
    if (this.refresh) this.refresh.reauthRequired = true;
  }
  async listDue(before: Date): Promise<DueAccessToken[]> {
    const a = this.access;
    return a && !a.reauthRequired && a.expiresAt && a.expiresAt < before
      ? [{ tenantId: 't1', integrationId: 'idp', connectionId: 'c1', credentialId: a.credentialId, expiresAt: a.expiresAt }]
      : [];
  }
  private write(prev: (StoredToken & { value: string }) | undefined, id: string, w: TokenWrite): StoredToken & { value: string } {
    return {
      credentialId: id,
      value: w.value,
      version: (prev?.version ?? 0) + 1,
      rowVersion: (prev?.rowVersion ?? 0) + 1,
      reauthRequired: false,
      expiresAt: w.expiresAt,
      issuedAt: this.clock.now(),
      tags: { ...(prev?.tags ?? {}), ...(w.tags ?? {}) },
    };
  }
}

/** Answers refresh requests from a script; counts calls. */
export class ScriptedTokenClient extends OAuthTokenClient {
  calls = 0;
  /** Refresh tokens presented, in order. */
  presented: string[] = [];
  script: Array<() => OAuthTokenSet> = [];
  async refresh(_p: ResolvedOAuthProvider, rt: string): Promise<OAuthTokenSet> {
    this.calls++;
    this.presented.push(rt);
    const next = this.script.shift();
    if (next) return next();
    return { accessToken: `at-${this.calls}`, refreshToken: `rt-${this.calls}`, expiresIn: 3600, tokenType: 'bearer' };
  }
}

/** A stored token of FakeConnectionsStore, with its value and the connection it belongs to. */
type HeldToken = StoredToken & { value: string; due: Omit<DueAccessToken, 'credentialId' | 'expiresAt'> };

/**
 * Many connections' tokens in memory (any tenant and integration), for specs of what spans connections (the proactive
 * job). `add` stores a connection (its access token issued an hour before `expiresAt`) whose refresh token is
 * `rt-<tenant>-<connection>`; the client secret read is `clientSecret`.
 */
export class FakeConnectionsStore extends OAuthTokenStore {
  private readonly tokens = new Map<string, HeldToken>();
  constructor(
    private readonly clock: ManualClock,
    readonly clientSecret = 'client-secret',
  ) {
    super();
  }
  add(tenantId: string, integrationId: string, connectionId: string, expiresAt: Date): void {
    const due = { tenantId, integrationId, connectionId };
    const held = (kind: string, value: string, at: Date | null): HeldToken => ({
      credentialId: `${kind}-${tenantId}-${connectionId}`,
      value,
      version: 1,
      rowVersion: 1,
      reauthRequired: false,
      expiresAt: at,
      issuedAt: new Date(expiresAt.getTime() - 3_600_000),
      tags: {},
      due,
    });
    for (const t of [held('access', `at-${tenantId}-${connectionId}`, expiresAt), held('refresh', `rt-${tenantId}-${connectionId}`, null)]) this.tokens.set(t.credentialId, t);
  }
  load(ctx: OperationContext, _integrationId: string, connectionId: string): Promise<ConnectionTokens> {
    const get = (kind: string) => {
      const t = this.tokens.get(`${kind}-${ctx.tenantId}-${connectionId}`);
      return t && { ...t };
    };
    const access = get('access');
    const refresh = get('refresh');
    return Promise.resolve({ ...(access ? { access } : {}), ...(refresh ? { refresh } : {}) });
  }
  readValue(_ctx: OperationContext, token: StoredToken): Promise<string> {
    return Promise.resolve(this.tokens.get(token.credentialId)!.value);
  }
  readClientSecret(): Promise<string> {
    return Promise.resolve(this.clientSecret);
  }
  save(): Promise<ConnectionTokens> {
    return Promise.reject(new Error('FakeConnectionsStore: connections are added with add()'));
  }
  rotate(_c: OperationContext, token: StoredToken, write: TokenWrite & { expectedRowVersion: number }): Promise<StoredToken> {
    const prev = this.tokens.get(token.credentialId)!;
    const next: HeldToken = { ...prev, value: write.value, version: prev.version + 1, rowVersion: prev.rowVersion + 1, reauthRequired: false, expiresAt: write.expiresAt, issuedAt: this.clock.now() };
    this.tokens.set(token.credentialId, next);
    return Promise.resolve({ ...next });
  }
  markReauthRequired(_c: OperationContext, tokens: StoredToken[]): Promise<void> {
    for (const t of tokens) this.tokens.get(t.credentialId)!.reauthRequired = true;
    return Promise.resolve();
  }
  /** Needs-reauth marks made, by credential id. */
  get reauthMarked(): string[] {
    return [...this.tokens.values()].filter((t) => t.reauthRequired).map((t) => t.credentialId);
  }
  listDue(before: Date, limit: number, cursor?: DuePageCursor): Promise<DueAccessToken[]> {
    const order = (a: { expiresAt: Date; credentialId: string }, b: { expiresAt: Date; credentialId: string }) =>
      a.expiresAt.getTime() - b.expiresAt.getTime() || a.credentialId.localeCompare(b.credentialId);
    const due = [...this.tokens.values()]
      .filter((t) => t.credentialId.startsWith('access-') && !t.reauthRequired && t.expiresAt && t.expiresAt < before)
      .map((t) => ({ ...t.due, credentialId: t.credentialId, expiresAt: t.expiresAt! }))
      .filter((t) => !cursor || order(t, cursor) > 0)
      .sort(order);
    return Promise.resolve(due.slice(0, limit));
  }
}
