import type { CertificateInfo, CredentialMetadata, CredentialWithValue } from '@app/credentials';

/**
 * 200-response schemas of the two hot read routes (`GET /v1/credentials/{id}` and `…/value`). Fastify
 * compiles them into a serializer (fast-json-stringify) that writes the same JSON as `JSON.stringify`
 * at about a third of its cost (the four Dates of a metadata object go through `toJSON` there). A
 * schema is a whitelist: the `Record<keyof …>` types make a property added to the model without its
 * schema a compile error instead of a field silently missing from the answer; the spec compares both
 * serializers on every shape.
 */
type Schema = Record<string, unknown>;

const text = { type: 'string' } as const;
const integer = { type: 'integer' } as const;
const instant = { type: 'string', format: 'date-time' } as const;
const instantOrNull = { type: ['string', 'null'], format: 'date-time' } as const;

const certificate: Record<keyof CertificateInfo, Schema> = {
  subject: text,
  issuer: text,
  serialNumber: text,
  fingerprint256: text,
  validFrom: instant,
  validTo: instant,
};

const metadata: Record<keyof CredentialMetadata, Schema> = {
  id: text,
  tenantId: text,
  integrationId: text,
  connectionId: text,
  type: text,
  valueStore: text,
  version: integer,
  rowVersion: integer,
  status: text,
  expiresAt: instantOrNull,
  rotatedAt: instantOrNull,
  tags: { type: 'object', additionalProperties: text },
  maskedValue: text,
  certificate: { anyOf: [{ type: 'null' }, { type: 'object', properties: certificate }] },
  createdAt: instant,
  updatedAt: instant,
  createdBy: text,
  updatedBy: text,
};

export const CREDENTIAL_METADATA_SCHEMA: Schema = { type: 'object', properties: metadata };

const withValue: Record<keyof CredentialWithValue, Schema> = {
  value: text,
  metadata: CREDENTIAL_METADATA_SCHEMA,
};

export const CREDENTIAL_WITH_VALUE_SCHEMA: Schema = { type: 'object', properties: withValue };
