import type { Provider } from '@nestjs/common';
import { CredentialType } from '@app/credentials';
import { RotationPolicyService } from '../policies/rotation-policy.service';
import { ROTATION_CLOCK, ROTATION_LOCK, ROTATION_RESOLVED_OPTIONS } from '../rotation.constants';
import type { ResolvedRotationOptions } from '../rotation.options';
import { WEBHOOK_ROTATION_DUE_POLICY, WEBHOOK_SECRETS_CLOCK, WEBHOOK_SECRETS_LOCK, WEBHOOK_SECRETS_OPTIONS, type WebhookRotationDuePolicy } from './webhook-secrets.tokens';

const DAY_MS = 86_400_000;

/** The effective rotation policy of a webhook secret decides: automatic and `rotateAfterDays` > 0, else never. */
export class PolicyServiceDuePolicy implements WebhookRotationDuePolicy {
  constructor(private readonly policies: RotationPolicyService) {}

  async rotateAfterMs(ref: { tenantId: string; integrationId: string; credentialId: string }): Promise<number | null> {
    const policy = await this.policies.resolve({ id: ref.credentialId, tenantId: ref.tenantId, integrationId: ref.integrationId, type: CredentialType.WEBHOOK_SECRET });
    return policy.rotation === 'automatic' && policy.rotateAfterDays > 0 ? policy.rotateAfterDays * DAY_MS : null;
  }
}

/**
 * How the webhook part plugs into RotationModule: its options are the `webhooks` key of the module
 * options (validated with the rest of them, in resolveRotationOptions), and it shares the module's Clock, lock and policies.
 */
export const WEBHOOK_WIRING: Provider[] = [
  {
    provide: WEBHOOK_SECRETS_OPTIONS,
    useFactory: (options: ResolvedRotationOptions) => options.webhooks,
    inject: [ROTATION_RESOLVED_OPTIONS],
  },
  { provide: WEBHOOK_SECRETS_CLOCK, useExisting: ROTATION_CLOCK },
  { provide: WEBHOOK_SECRETS_LOCK, useExisting: ROTATION_LOCK },
  { provide: WEBHOOK_ROTATION_DUE_POLICY, useFactory: (policies: RotationPolicyService) => new PolicyServiceDuePolicy(policies), inject: [RotationPolicyService] },
];
