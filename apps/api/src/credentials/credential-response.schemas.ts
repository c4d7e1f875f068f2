import {
  ConnectionStatus,
  CREDENTIAL_TYPES,
  CredentialStatus,
  ValueStoreKind,
  type BatchDeleteResult,
  type CertificateInfo,
  type ConnectionCredentialView,
  type ConnectionView,
  type CredentialMetadata,
  type CredentialStatistics,
  type CredentialVersionInfo,
  type CredentialVersionWithValue,
  type CredentialWithValue,
} from '@app/credentials';
import { arrayOf, boolean, boundedItemsOf, countMap, countsBy, enumOf, instant, integer, itemsOf, nullable, object, pageOf, stringMap, text } from '../http/json-schema';

/**
 * Response schemas of the credentials and connections routes (components of the OpenAPI document).
 * The first two are also the 200-response schemas of the two hot read routes (`GET /v1/credentials/{id}`
 * and `…/value`): Fastify compiles them into a serializer (fast-json-stringify) that writes the same
 * JSON as `JSON.stringify` at about a third of its cost (the four Dates of a metadata object go through
 * `toJSON` there). There a schema is a whitelist: a property the schema lacks never leaves the process,
 * which is why `object<T>()` makes a property added to the model without its schema a compile error;
 * the spec compares both serializers on every shape.
 */
const credentialType = enumOf(CREDENTIAL_TYPES);
const credentialStatus = enumOf(Object.values(CredentialStatus));
const valueStore = enumOf(Object.values(ValueStoreKind));

const certificate = object<CertificateInfo>({
  subject: text,
  issuer: text,
  serialNumber: text,
  fingerprint256: text,
  validFrom: instant,
  validTo: instant,
});

export const CREDENTIAL_METADATA_SCHEMA = object<CredentialMetadata>({
  id: text,
  tenantId: text,
  integrationId: text,
  connectionId: text,
  type: credentialType,
  valueStore,
  version: { ...integer, description: 'the current version: what a value read serves' },
  rowVersion: { ...integer, description: 'compare-and-set counter: pass it as expectedVersion to a write' },
  status: credentialStatus,
  expiresAt: nullable(instant),
  rotatedAt: nullable(instant),
  tags: stringMap,
  maskedValue: { ...text, description: '*** and at most the last 3 characters of the value' },
  certificate: { ...nullable(certificate), description: 'client certificates only: facts read from the certificate' },
  createdAt: instant,
  updatedAt: instant,
  createdBy: text,
  updatedBy: text,
});

export const CREDENTIAL_WITH_VALUE_SCHEMA = object<CredentialWithValue>({ value: text, metadata: CREDENTIAL_METADATA_SCHEMA });

const version = object<CredentialVersionInfo>({
  credentialId: text,
  version: integer,
  valueStore,
  sourceVersion: { ...nullable(integer), description: 'versions created by a rollback: the version whose value this one serves again' },
  expiresAt: nullable(instant),
  maskedValue: text,
  createdAt: instant,
  createdBy: text,
  current: boolean,
  revokedAt: { ...nullable(instant), description: 'when a revoke withdrew this version (never served again)' },
});

const connectionCredential = object<ConnectionCredentialView>({ id: text, type: credentialType, status: credentialStatus, maskedValue: text, expiresAt: nullable(instant) });

const connection = object<ConnectionView>({
  integrationId: text,
  connectionId: { ...nullable(text), description: 'null for a configured integration without a connection (not_configured)' },
  status: enumOf(Object.values(ConnectionStatus)),
  expiresAt: { ...nullable(instant), description: "the earliest expiry among the connection's credentials" },
  updatedAt: nullable(instant),
  credentials: arrayOf(connectionCredential),
});

/** The schemas of this part's answers, by component name. */
export const CREDENTIAL_RESPONSE_SCHEMAS = {
  CredentialMetadata: CREDENTIAL_METADATA_SCHEMA,
  CredentialWithValue: CREDENTIAL_WITH_VALUE_SCHEMA,
  CredentialPage: pageOf(CREDENTIAL_METADATA_SCHEMA),
  CredentialList: boundedItemsOf(CREDENTIAL_METADATA_SCHEMA, 'page GET /v1/credentials?expiringBefore= for all of them'),
  CredentialStatistics: object<CredentialStatistics>({
    total: integer,
    byType: countsBy(CREDENTIAL_TYPES),
    byIntegration: countMap,
    byStatus: countsBy(Object.values(CredentialStatus)),
    expiringWithin7Days: integer,
    expiringWithin30Days: integer,
    expired: integer,
  }),
  BatchDeleteResult: object<BatchDeleteResult>({ deleted: arrayOf(text), notFound: arrayOf(text) }),
  CredentialVersion: version,
  CredentialVersionList: itemsOf(version),
  CredentialVersionWithValue: object<CredentialVersionWithValue>({ value: text, version, metadata: CREDENTIAL_METADATA_SCHEMA }),
  Connection: connection,
  ConnectionList: itemsOf(connection),
};
