import { AuditResult, type AuditLogEntryView, type AuditVerifyFailureReason, type AuditVerifyResult } from '@app/audit';
import { boolean, enumOf, instant, integer, members, nullable, object, optional, pageOf, text } from '../http/json-schema';

/** Response schemas of the audit routes (components of the OpenAPI document). */
const entry = object<AuditLogEntryView>({
  id: text,
  sequence: { ...integer, description: "position in the tenant's hash chain, 1-based" },
  occurredAt: instant,
  action: { ...text, description: 'e.g. store, read, rotate, revoke, policy_change, key.sign' },
  tenantId: text,
  resource: { ...text, description: 'a credential id, a secret or key name; for a refused request its method and route pattern (GET /v1/credentials/:id/value)' },
  actorId: text,
  actorIp: nullable(text),
  userAgent: nullable(text),
  result: enumOf(Object.values(AuditResult)),
  errorCode: nullable(text),
  durationMs: nullable(integer),
  correlationId: nullable(text),
  details: { type: 'object', nullable: true, description: 'non-secret facts of the event' },
  previousHash: { ...text, description: 'hash of the previous row of the chain (64 zeros for the first)' },
  hash: { ...text, description: "SHA-256 (hex) over this row's canonical encoding" },
});

const firstBad = object<NonNullable<AuditVerifyResult['firstBad']>>({
  id: text,
  sequence: integer,
  tenantId: text,
  reason: enumOf(
    members<AuditVerifyFailureReason>({ hash_mismatch: 1, broken_link: 1, sequence_gap: 1, reordered: 1, anchor_mismatch: 1, truncated: 1 }),
  ),
});

/** The schemas of this part's answers, by component name. */
export const AUDIT_RESPONSE_SCHEMAS = {
  AuditEntry: entry,
  AuditPage: pageOf(entry),
  AuditVerification: object<AuditVerifyResult>({
    valid: boolean,
    checked: { ...integer, description: 'rows checked' },
    chains: integer,
    anchorsChecked: { ...integer, description: 'chains also compared with their latest Key Vault anchor' },
    firstBad: optional({ ...firstBad, description: 'the first bad row of the first broken chain' }),
  }),
};
