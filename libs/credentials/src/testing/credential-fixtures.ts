import { at, credentialRow } from '../../test/repository-fixtures';
import { CredentialStatus, CredentialType, ValueStoreKind } from '../credential-type';
import type { CredentialEntity, StoredCertificateInfo } from '../entities/credential.entity';

const DAY = 86_400_000;

/** Certificate facts as stored (JSON in TEXT). */
export const TEST_CERTIFICATE: StoredCertificateInfo = {
  subject: 'CN=example.test',
  issuer: 'CN=Example CA',
  serialNumber: '0A:1B',
  fingerprint256: 'AB:CD',
  validFrom: '2025-01-01T00:00:00.000Z',
  validTo: '2027-01-01T00:00:00.000Z',
};

/**
 * Test-only (not exported from the lib): a metadata row with every nullable field set and the values
 * hand-written SQL gets wrong — non-ASCII and quotes, a date beyond 2^32 seconds, nested JSON —
 * for specs comparing plain SQL with TypeORM's own reads and writes. Expires 110 days (+123 ms)
 * after the fixtures' base instant; `over` replaces any field.
 */
export function everyFieldSetCredential(tenantId: string, over: Partial<CredentialEntity> = {}): CredentialEntity {
  return credentialRow(tenantId, {
    integrationId: 'ïntégration-✓',
    connectionId: 'conn "quoted" \'x\'',
    type: CredentialType.CLIENT_CERTIFICATE,
    valueStore: ValueStoreKind.ENVELOPE,
    currentVersion: 5,
    status: CredentialStatus.NEEDS_REAUTH,
    expiresAt: at(110 * DAY + 123),
    rotatedAt: new Date(Date.UTC(2200, 11, 31, 23, 59, 59, 999)), // beyond 2^32 seconds
    tags: { env: 'prod', 'ключ': 'значение 🔑', empty: '' },
    valueHint: 'xyz',
    certificate: TEST_CERTIFICATE,
    vaultGeneration: 3,
    rowVersion: 7,
    createdAt: at(1),
    updatedAt: at(2 * DAY + 1),
    deletedAt: at(3 * DAY),
    createdBy: 'user-1',
    updatedBy: 'user-2',
    ...over,
  });
}
