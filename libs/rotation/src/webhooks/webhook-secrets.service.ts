import { Inject, Injectable } from '@nestjs/common';
import { Clock, foldUuid, type OperationContext } from '@app/common';
import { CredentialsService, CredentialType, type CredentialMetadata, type ValueStoreKindInput } from '@app/credentials';
import type { WebhookSecretState } from './persistence/webhook-secret-version.entity';
import { WebhookSecretVersionRepository } from './persistence/webhook-secret-version.repository';
import {
  generateWebhookSecret,
  signWebhookPayload,
  checkWebhookHeaders,
  matchWebhookSignature,
  type IncomingWebhookHeaders,
  type VerifiedWebhook,
  type WebhookBody,
  type WebhookHeaders,
} from './standard-webhooks';
import { WebhookSecretKeyring, contextOf, type WebhookTarget } from './webhook-secret-keyring';
import {
  WebhookSecretRotator,
  type StagedWebhookSecret,
  type WebhookDiscardResult,
  type WebhookRotateOptions,
  type WebhookRotationResult,
} from './webhook-secret-rotator';
import type { ResolvedWebhookSecretsOptions } from './webhook-secrets.options';
import { WEBHOOK_SECRETS_CLOCK, WEBHOOK_SECRETS_OPTIONS } from './webhook-secrets.tokens';

/** A verified webhook and which secret matched. */
export interface VerifiedWebhookResult extends VerifiedWebhook {
  credentialId: string;
  /** The credential version of the secret that matched; null: a pushed secret not yet current. */
  version: number | null;
}

/** One version of a webhook secret, without its value. */
export interface WebhookSecretVersionView {
  rotationId: string;
  version: number | null;
  state: WebhookSecretState;
  currentSince: Date | null;
  liveUntil: Date | null;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
}

/**
 * Webhook secrets per Standard Webhooks: create, sign, verify (every live secret), rotate in two
 * phases with an overlap window. Tenant isolation comes from CredentialsService: every read and
 * write takes the caller's OperationContext (or the target's tenant with the system actor). Credential and rotation
 * ids are UUIDs, taken in any case (folded to lower case, as stored, on the way in); integration and connection ids
 * are case-sensitive.
 */
@Injectable()
export class WebhookSecretsService {
  constructor(
    private readonly credentials: CredentialsService,
    private readonly keyring: WebhookSecretKeyring,
    private readonly rotator: WebhookSecretRotator,
    private readonly rows: WebhookSecretVersionRepository,
    @Inject(WEBHOOK_SECRETS_CLOCK) private readonly clock: Clock,
    @Inject(WEBHOOK_SECRETS_OPTIONS) private readonly options: ResolvedWebhookSecretsOptions,
  ) {}

  /**
   * Generates a secret (`whsec_` + 32 random bytes), stores it as the connection's webhook_secret
   * credential and enrols it for rotation, in one transaction. Returns the secret once, to hand to
   * the provider: do not log it.
   */
  async create(
    ctx: OperationContext,
    input: { integrationId: string; connectionId: string; tags?: Record<string, string>; valueStore?: ValueStoreKindInput },
  ): Promise<{ credential: CredentialMetadata; secret: string }> {
    const secret = generateWebhookSecret();
    // Enrolled in the store's own transaction, which opens once the value is in the vault.
    const credential = await this.credentials.store(ctx, { ...input, type: CredentialType.WEBHOOK_SECRET, value: secret }, {
      inCommit: async (meta) => void (await this.keyring.enrolled(ctx, meta)),
    });
    return { credential, secret };
  }

  /** Enrols a webhook_secret credential stored directly through CredentialsService (sign/verify/rotate do it too). */
  async enroll(ctx: OperationContext, credentialId: string): Promise<void> {
    await this.keyring.enrolled(ctx, await this.credentials.getMetadata(ctx, credentialId));
  }

  /** The Standard Webhooks headers of a message, signed with the current secret. */
  async signWebhook(target: WebhookTarget, msgId: string, timestamp: Date | number, rawBody: WebhookBody): Promise<WebhookHeaders> {
    const { current } = await this.keyring.secrets(target);
    return signWebhookPayload([current.value], msgId, timestamp, rawBody);
  }

  /**
   * Verifies a received webhook against every live secret of the connection (the current one, those
   * inside their overlap window, and one being pushed to the provider). Throws WebhookVerificationError
   * (a code per failed check; never the secret, signature or body) or the credential's read errors.
   */
  async verifyWebhook(target: WebhookTarget, rawBody: WebhookBody, headers: IncomingWebhookHeaders): Promise<VerifiedWebhookResult> {
    // Headers first: a webhook refused on them alone reads no secret.
    const checked = checkWebhookHeaders(rawBody, headers, { now: this.clock.now(), toleranceSeconds: this.options.toleranceSeconds });
    const set = await this.keyring.secrets(target);
    const verified = matchWebhookSignature(
      set.verifying.map((s) => s.value),
      rawBody,
      checked,
    );
    return { ...verified, credentialId: set.credential.id, version: set.verifying[verified.secretIndex].version };
  }

  /** Rotates now (or completes a pending rotation). See WebhookSecretRotator. */
  rotate(ctx: OperationContext, credentialId: string, options: WebhookRotateOptions = {}): Promise<WebhookRotationResult> {
    // Folded before the per-credential lock, which is keyed by the id: two spellings of one id take the same lock.
    return this.rotator.rotate(ctx, foldUuid(credentialId), options);
  }

  /** Rotates the webhook secret of a connection. */
  async rotateConnection(target: WebhookTarget): Promise<WebhookRotationResult> {
    const meta = await this.keyring.find(target);
    return this.rotator.rotate(contextOf(target), meta.id);
  }

  /**
   * Operator-confirmed rotation, step 1: stages a new secret for the connection and returns it ONCE
   * (do not log it). Verification accepts it from now on; install it at the provider, then `activate`.
   */
  async stageConnection(target: WebhookTarget): Promise<StagedWebhookSecret> {
    const meta = await this.keyring.find(target);
    return this.rotator.stage(contextOf(target), meta.id);
  }

  /** Step 2, after the provider has it: the staged secret becomes current; the previous one verifies through the overlap window. */
  async activateConnection(target: WebhookTarget, rotationId?: string): Promise<WebhookRotationResult> {
    const meta = await this.keyring.find(target);
    return this.rotator.activate(contextOf(target), meta.id, foldUuid(rotationId));
  }

  /** Drops the staged secret; the current one stays current. */
  async discardConnection(target: WebhookTarget, rotationId?: string): Promise<WebhookDiscardResult> {
    const meta = await this.keyring.find(target);
    return this.rotator.discard(contextOf(target), meta.id, foldUuid(rotationId));
  }

  /** The versions of a credential's secret with their states (metadata only), newest first. */
  async versions(ctx: OperationContext, credentialId: string): Promise<WebhookSecretVersionView[]> {
    const meta = await this.credentials.getMetadata(ctx, credentialId); // tenant check
    return (await this.rows.history(meta.id)).map((r) => ({
      rotationId: r.id,
      version: r.credentialVersion,
      state: r.state,
      currentSince: r.currentSince,
      liveUntil: r.liveUntil,
      attempts: r.attempts,
      lastError: r.lastError,
      createdAt: r.createdAt,
    }));
  }
}
