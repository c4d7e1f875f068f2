import { Injectable } from '@nestjs/common';
import type { OperationContext } from '@app/common';
import { WebhookSecretUpdaterNotRegisteredError, WebhookSecretValidationError } from './webhook-secret.errors';

/** What an updater is asked to install at the provider. Do not log it: `newSecret` is the value. */
export interface WebhookSecretUpdate {
  context: OperationContext;
  credentialId: string;
  integrationId: string;
  connectionId: string;
  /** The secret to install (`whsec_...`). */
  newSecret: string;
  /**
   * Stable id of this rotation: the same on every retry of it, so the provider call can be made
   * idempotent (e.g. as an Idempotency-Key).
   */
  rotationId: string;
  /**
   * The credential version being replaced (the current one). Grows with every rotation of the credential (a repair
   * push repeats the current rotation's): a push with a lower one than the last pushed is stale (see the contract).
   */
  replacesVersion: number;
}

/**
 * Installs a new webhook secret at the provider (e.g. calls its API), one per integration.
 *
 * Contract: it may be called again with the SAME `newSecret` and `rotationId` after a crash or a
 * failure (it must be idempotent), and the provider must keep accepting the previous secret until
 * the overlap window ends — verification here accepts both meanwhile. Throwing leaves the previous
 * secret current; the rotation is retried by the next job run. Its error is recorded by name and
 * code only, so it may carry provider details but must not carry the secret.
 *
 * The rotation lock does not fence this call: a push that outlives its lost lock session may land after a
 * later rotation's. The rotator then pushes the current secret again (same rotationId as that rotation), but
 * an updater that can should refuse a push whose `replacesVersion` is below the last one it installed.
 */
export interface WebhookSecretUpdater {
  update(update: WebhookSecretUpdate): Promise<void>;
}

/** The updaters, per integration id, registered at runtime (there is no option for them: an updater usually needs the app's own providers). */
@Injectable()
export class WebhookSecretUpdaterRegistry {
  private readonly updaters = new Map<string, WebhookSecretUpdater>();

  /** Registers (or replaces) the updater of an integration; returns a function that removes it. */
  register(integrationId: string, updater: WebhookSecretUpdater): () => void {
    if (typeof integrationId !== 'string' || integrationId.length === 0) throw new WebhookSecretValidationError('integrationId must be a non-empty string', 'integrationId');
    if (!updater || typeof updater.update !== 'function') throw new WebhookSecretValidationError('updater must have an update(update) method', 'updater');
    this.updaters.set(integrationId, updater);
    return () => {
      if (this.updaters.get(integrationId) === updater) this.updaters.delete(integrationId);
    };
  }

  /** What this registry holds. The rotator and its job ask `get` instead (WebhookSecretRotator.hasUpdater): an embedding app's registry may answer it alone. */
  has(integrationId: string): boolean {
    return this.updaters.has(integrationId);
  }

  /** The updater of an integration, or WebhookSecretUpdaterNotRegisteredError. */
  get(integrationId: string): WebhookSecretUpdater {
    const updater = this.updaters.get(integrationId);
    if (!updater) throw new WebhookSecretUpdaterNotRegisteredError(integrationId);
    return updater;
  }
}
