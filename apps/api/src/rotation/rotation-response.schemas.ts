import type { CredentialMetadata } from '@app/credentials';
import { CREDENTIAL_TYPES } from '@app/credentials';
import {
  POLICY_LEVELS,
  REVOKE_SEVERITIES,
  ROTATION_MODES,
  WebhookSecretState,
  type DueRotation,
  type EffectivePolicy,
  type NotificationSettingsView,
  type PendingRotation,
  type PolicySource,
  type RevokeResult,
  type RotationHistoryEntry,
  type RotationPolicyOverride,
  type StagedWebhookSecret,
  type UpcomingExpiry,
  type WebhookDiscardResult,
  type WebhookRotationResult,
  type WebhookSecretVersionView,
} from '@app/rotation';
import { CREDENTIAL_METADATA_SCHEMA } from '../credentials/credential-response.schemas';
import { arrayOf, boolean, boundedItemsOf, enumOf, instant, integer, itemsOf, members, nullable, number, object, optional, text, type Answer, type Merged, type Schema } from '../http/json-schema';
import type { NotificationSettingsController } from './notifications.controller';
import type { RotationController } from './rotation.controller';
import type { WebhookSecretsController } from './webhook-secrets.controller';

/** Response schemas of the rotation routes (components of the OpenAPI document). */
const rotationMode = enumOf(ROTATION_MODES);

/** The credential's metadata and the fields the controller adds to it (`{ ...metadata, ...fields }`). */
const metadataWith = (fields: Schema): Schema => ({ allOf: [CREDENTIAL_METADATA_SCHEMA, fields] });

const policyOverride = object<RotationPolicyOverride>({
  id: text,
  tenantId: text,
  level: enumOf(POLICY_LEVELS),
  target: optional({ ...text, description: 'the integration id (level integration) or credential id (level credential)' }),
  credentialType: optional({ ...enumOf(CREDENTIAL_TYPES), description: 'a tenant or integration override of this type only' }),
  rotateAfterDays: { ...nullable(integer), description: 'null: inherited' },
  warnBeforeDays: { ...nullable(integer), description: 'null: inherited' },
  rotation: { ...nullable(rotationMode), description: 'null: inherited' },
  createdAt: instant,
  updatedAt: instant,
  updatedBy: text,
  rowVersion: integer,
});

const policySource = object<Merged<PolicySource>>({
  level: enumOf(members<PolicySource['level']>({ credential: 1, 'integration-type': 1, integration: 1, 'tenant-type': 1, tenant: 1, default: 1 })),
  overrideId: optional({ ...text, description: 'the override that won; absent for default' }),
});

const historyEntry = object<RotationHistoryEntry>({
  id: text,
  credentialId: text,
  action: enumOf(members<RotationHistoryEntry['action']>({ rotate: 1, rollback: 1, revoke: 1, unrevoke: 1 })),
  method: { ...text, description: 'given, handler, generator, webhook, rollback, revoke or unrevoke' },
  fromVersion: nullable(integer),
  toVersion: nullable(integer),
  actor: text,
  reason: nullable(text),
  severity: nullable(enumOf(REVOKE_SEVERITIES)),
  at: instant,
});

const webhookRotation = object<WebhookRotationResult>({
  credentialId: text,
  outcome: enumOf(members<WebhookRotationResult['outcome']>({ rotated: 1, not_due: 1 })),
  rotationId: optional(text),
  version: { ...integer, description: 'the credential version now current' },
  previousVersion: optional(integer),
  previousLiveUntil: optional({ ...instant, description: 'until when the previous secret still verifies' }),
  resumed: optional({ ...boolean, description: 'an interrupted or failed rotation was completed' }),
});

const webhookVersion = object<WebhookSecretVersionView>({
  rotationId: text,
  version: { ...nullable(integer), description: 'null while pending' },
  state: enumOf(Object.values(WebhookSecretState)),
  currentSince: nullable(instant),
  liveUntil: nullable(instant),
  attempts: integer,
  lastError: nullable(text),
  createdAt: instant,
});

const upcomingExpiry = object<UpcomingExpiry>({ credential: CREDENTIAL_METADATA_SCHEMA, daysLeft: { ...number, description: 'negative once expired' }, warnBeforeDays: integer });

const dueRotation = object<DueRotation>({ credential: CREDENTIAL_METADATA_SCHEMA, dueAt: instant, rotateAfterDays: integer, rotation: rotationMode });

const pendingRotation = object<PendingRotation>({
  credentialId: text,
  pendingCredentialId: { ...text, description: 'the custom_secret credential (envelope store) holding the value' },
  basedOnVersion: { ...integer, description: 'the version the value replaces: written only while it is still current' },
  since: instant,
});

const notificationSettings = object<NotificationSettingsView>({
  tenantId: text,
  webhookUrl: nullable(text),
  webhookSecretConfigured: boolean,
  webhookSecretCredentialId: nullable(text),
  emailRecipients: arrayOf(text),
  rowVersion: { ...integer, description: '0 until the first update; pass it as expectedRowVersion' },
  updatedAt: nullable(instant),
  updatedBy: nullable(text),
});

/** The schemas of this part's answers, by component name. */
export const ROTATION_RESPONSE_SCHEMAS = {
  RotationPolicyOverride: policyOverride,
  RotationPolicyOverrideList: itemsOf(policyOverride),
  RotationPolicySource: policySource,
  EffectiveRotationPolicy: object<EffectivePolicy>({
    credentialId: text,
    tenantId: text,
    integrationId: text,
    type: enumOf(CREDENTIAL_TYPES),
    rotateAfterDays: { ...integer, description: '0: never due' },
    warnBeforeDays: { ...integer, description: '0: no warnings' },
    rotation: rotationMode,
    sources: object<EffectivePolicy['sources']>({ rotateAfterDays: policySource, warnBeforeDays: policySource, rotation: policySource }),
  }),
  RotatedCredential: metadataWith(
    object<Omit<Answer<RotationController['rotate']>, keyof CredentialMetadata>>({
      fromVersion: integer,
      method: enumOf(members<Answer<RotationController['rotate']>['method']>({ given: 1, handler: 1, generator: 1, webhook: 1 })),
    }),
  ),
  RotationHistoryEntry: historyEntry,
  RotationHistory: itemsOf(historyEntry),
  RevokeResult: object<RevokeResult>({
    revoked: { ...arrayOf(text), description: 'credentials revoked (or finished) by this call' },
    vaultVersionsDisabled: integer,
    vaultFailures: { ...arrayOf(text), description: 'revoked, but not every Key Vault version could be disabled yet: call again' },
    gone: { ...arrayOf(text), description: 'of a connection, integration or tenant target: deleted by another request before their turn, nothing left to revoke' },
  }),
  PendingRotationState: object<Answer<RotationController['pendingRotation']>>({
    credentialId: text,
    pendingRotation: { ...nullable(pendingRotation), description: 'null: none' },
  }),
  UpcomingExpiry: upcomingExpiry,
  UpcomingExpiryList: boundedItemsOf(upcomingExpiry, 'page GET /v1/credentials?expiringBefore= for all of them'),
  DueRotation: dueRotation,
  DueRotationList: boundedItemsOf(dueRotation, 'the others are due no sooner than the last one answered'),
  NotificationSettings: notificationSettings,
  NotificationSettingsUpdate: {
    allOf: [
      notificationSettings,
      object<Omit<Merged<Answer<NotificationSettingsController['update']>>, keyof NotificationSettingsView>>({
        generatedWebhookSecret: optional({ ...text, description: 'only when this call generated the signing secret: shown once' }),
      }),
    ],
  },
  WebhookSecretCreated: metadataWith(
    object<Omit<Answer<WebhookSecretsController['create']>, keyof CredentialMetadata>>({ secret: { ...text, description: 'the only time the value is answered' } }),
  ),
  WebhookSecretRotation: webhookRotation,
  StagedWebhookSecret: object<StagedWebhookSecret>({
    credentialId: text,
    rotationId: { ...text, description: 'names this rotation in activate and discard' },
    secret: { ...text, description: 'the only time the value is answered' },
    stagedAt: instant,
    activateBefore: { ...instant, description: 'not activated by then: discarded' },
    replacesVersion: integer,
  }),
  WebhookSecretDiscarded: object<WebhookDiscardResult>({ credentialId: text, rotationId: text, version: { ...integer, description: 'the version that stays current' } }),
  WebhookSecretVersion: webhookVersion,
  WebhookSecretVersions: object<Answer<WebhookSecretsController['versions']>>({ credentialId: text, items: arrayOf(webhookVersion) }),
  WebhookVerified: object<Answer<WebhookSecretsController['verify']>>({
    valid: { ...boolean, enum: [true] },
    version: { ...nullable(integer), description: 'the credential version of the secret that matched; null: a secret being pushed, not yet current' },
    msgId: text,
    timestamp: instant,
  }),
};
