import { Inject, Injectable } from '@nestjs/common';
import { Clock, type OperationContext } from '@app/common';
import { CredentialRevokedError, CredentialsService, CredentialType, type CredentialMetadata } from '@app/credentials';
import { WebhookSecretState, type WebhookSecretVersionEntity } from './persistence/webhook-secret-version.entity';
import { WebhookSecretVersionRepository } from './persistence/webhook-secret-version.repository';
import { NotAWebhookSecretError, WebhookSecretNotFoundError, WebhookSecretValidationError } from './webhook-secret.errors';
import { WebhookSecretStates } from './webhook-secret-states';
import type { ResolvedWebhookSecretsOptions } from './webhook-secrets.options';
import { WEBHOOK_SECRETS_CLOCK, WEBHOOK_SECRETS_OPTIONS } from './webhook-secrets.tokens';

/** Which connection's webhook secret: the tenant, integration and connection, and who asks. */
export interface WebhookTarget {
  tenantId: string;
  integrationId: string;
  connectionId: string;
  /** Actor and correlation id of the reads (audited). @default the system actor `system:webhooks` */
  context?: OperationContext;
}

/** One secret that verifies (a value: never log it). */
interface KeyedSecret {
  value: string;
  /** Credential version, or null for a pushed pending secret. */
  version: number | null;
  state: WebhookSecretState;
  liveUntil: Date | null;
}

export interface WebhookSecretSet {
  credential: CredentialMetadata;
  /** The current secret: the one that signs. */
  current: { value: string; version: number };
  /** Every secret that verifies now, the current one first. */
  verifying: Array<{ value: string; version: number | null }>;
}

interface CacheEntry {
  credential: CredentialMetadata;
  stamp: string;
  secrets: KeyedSecret[];
  checkedAt: number;
}

/**
 * The secrets of a connection, read through CredentialsService (audited reads that refuse revoked
 * and expired values) and kept in process keyed by the credential's row version and the state of
 * its version rows: a verification costs two metadata queries, not a vault read, until a rotation
 * (or revoke, or any other write) changes the row version. Rotations here also invalidate at once.
 */
@Injectable()
export class WebhookSecretKeyring {
  private readonly cache = new Map<string, CacheEntry>();

  constructor(
    private readonly credentials: CredentialsService,
    private readonly rows: WebhookSecretVersionRepository,
    private readonly states: WebhookSecretStates,
    @Inject(WEBHOOK_SECRETS_CLOCK) private readonly clock: Clock,
    @Inject(WEBHOOK_SECRETS_OPTIONS) private readonly options: ResolvedWebhookSecretsOptions,
  ) {}

  /** The connection's live webhook_secret credential (metadata only), or WebhookSecretNotFoundError. */
  async find(target: WebhookTarget): Promise<CredentialMetadata> {
    const ctx = contextOf(target);
    const page = await this.credentials.list(ctx, { integrationId: target.integrationId, connectionId: target.connectionId, type: CredentialType.WEBHOOK_SECRET, limit: 1 });
    if (page.items.length === 0) throw new WebhookSecretNotFoundError();
    return page.items[0];
  }

  /** The signing secret and every verifying one, for `target`. */
  async secrets(target: WebhookTarget): Promise<WebhookSecretSet> {
    const ctx = contextOf(target);
    const key = cacheKey(target);
    const now = this.clock.now();
    let entry = this.cache.get(key);
    if (!entry || now.getTime() - entry.checkedAt >= this.options.cacheTtlMs || expired(entry.credential, now)) entry = await this.check(ctx, target, entry, now);
    const verifying = entry.secrets.filter((s) => s.state !== WebhookSecretState.LIVE || (s.liveUntil?.getTime() ?? 0) > now.getTime());
    const current = entry.secrets.find((s) => s.state === WebhookSecretState.CURRENT);
    if (!current || current.version === null) throw new WebhookSecretNotFoundError();
    return { credential: entry.credential, current: { value: current.value, version: current.version }, verifying: verifying.map(({ value, version }) => ({ value, version })) };
  }

  /** Forget a credential's secrets (after a rotation here; other replicas see the new row version). */
  invalidate(credentialId: string): void {
    for (const [key, entry] of this.cache) if (entry.credential.id === credentialId) this.cache.delete(key);
  }

  /** The rows of a credential enrolled (a current row for its current version), and those rows. */
  async enrolled(ctx: OperationContext, meta: CredentialMetadata): Promise<WebhookSecretVersionEntity[]> {
    if (meta.type !== CredentialType.WEBHOOK_SECRET) throw new NotAWebhookSecretError(meta.id);
    let active = await this.rows.active(meta.id);
    try {
      if (await this.states.ensureCurrent(ctx, meta, active)) active = await this.rows.active(meta.id);
    } catch (e) {
      // Another replica enrolled it at the same moment (unique index): its rows are as good as ours.
      active = await this.rows.active(meta.id);
      if (!active.some((r) => r.state === WebhookSecretState.CURRENT && (r.credentialVersion ?? 0) >= meta.version)) throw e;
    }
    return active;
  }

  private async check(ctx: OperationContext, target: WebhookTarget, entry: CacheEntry | undefined, now: Date): Promise<CacheEntry> {
    let meta = await this.find(target);
    let active = await this.enrolled(ctx, meta);
    const current = active.find((r) => r.state === WebhookSecretState.CURRENT);
    if (current && (current.credentialVersion ?? 0) > meta.version) {
      // The metadata was read just before a promotion committed: read it again (versions only grow).
      meta = await this.find(target);
      active = await this.enrolled(ctx, meta);
    }
    const stamp = `${meta.id}:${meta.rowVersion}:${active.map((r) => `${r.id}/${r.state}/${r.pushStartedAt ? 1 : 0}`).join(',')}`;
    // Passing `expiresAt` changes no row: an expired secret is read again, which refuses it.
    if (entry && entry.stamp === stamp && !expired(meta, now)) {
      entry.checkedAt = now.getTime();
      return entry;
    }
    const fresh: CacheEntry = { credential: meta, stamp, secrets: await this.load(ctx, meta, active), checkedAt: now.getTime() };
    this.cache.set(cacheKey(target), fresh);
    return fresh;
  }

  /** Reads the values: the current one (refused if revoked/expired), the live ones, a pushed pending one. */
  private async load(ctx: OperationContext, meta: CredentialMetadata, active: WebhookSecretVersionEntity[]): Promise<KeyedSecret[]> {
    let current: { value: string; metadata: { version: number } } = await this.credentials.get(ctx, meta.id);
    // A cached value older than the metadata (another process wrote it: its eviction is not delivered yet): the exact version.
    if (current.metadata.version !== meta.version) current = { value: (await this.credentials.getVersion(ctx, meta.id, meta.version)).value, metadata: { version: meta.version } };
    const out: KeyedSecret[] = [{ value: current.value, version: current.metadata.version, state: WebhookSecretState.CURRENT, liveUntil: null }];
    for (const row of active) {
      if (row.state === WebhookSecretState.LIVE && row.credentialVersion !== null && row.credentialVersion !== current.metadata.version) {
        if ((row.liveUntil?.getTime() ?? 0) <= this.clock.now().getTime()) continue;
        // A revoke withdrew it (the credential was rotated since): it verifies nothing, whatever its window.
        const old = await this.credentials.getVersion(ctx, meta.id, row.credentialVersion, { allowExpired: true }).catch((e: unknown) => {
          if (e instanceof CredentialRevokedError) return null;
          throw e;
        });
        if (old) out.push({ value: old.value, version: row.credentialVersion, state: WebhookSecretState.LIVE, liveUntil: row.liveUntil });
      } else if (row.state === WebhookSecretState.PENDING && row.pushStartedAt && row.stagingCredentialId) {
        // Once pushed, the provider may already sign with it, although it is not current here yet.
        // Best effort: a broken pending rotation must not stop verification with the live secrets.
        const pending = await this.credentials.get(ctx, row.stagingCredentialId).catch(() => null);
        if (pending) out.push({ value: pending.value, version: null, state: WebhookSecretState.PENDING, liveUntil: null });
      }
    }
    return out;
  }
}

export function contextOf(target: WebhookTarget): OperationContext {
  if (!target || typeof target !== 'object') throw new WebhookSecretValidationError('A target { tenantId, integrationId, connectionId } is required', 'target');
  if (target.context && target.context.tenantId !== target.tenantId) throw new WebhookSecretValidationError('context.tenantId must be the target tenantId', 'context');
  return target.context ?? { tenantId: target.tenantId, actor: { id: 'system:webhooks' } };
}

function expired(meta: CredentialMetadata, now: Date): boolean {
  return meta.expiresAt !== null && meta.expiresAt.getTime() <= now.getTime();
}

function cacheKey(t: WebhookTarget): string {
  return JSON.stringify([t.tenantId, t.integrationId, t.connectionId]);
}
