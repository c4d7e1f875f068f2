import { CreateCredentialsTables1760000000000 } from './1760000000000-create-credentials-tables';
import { CreateWrappedDataKeys1840000000000 } from './1840000000000-create-wrapped-data-keys';
import { CredentialKeysetIndexes1860000000000 } from './1860000000000-credential-keyset-indexes';
import { CredentialExpiryScanCoveringIndex1870000000000 } from './1870000000000-credential-expiry-scan-covering-index';
import { CredentialVersionRevokedAt1880000000000 } from './1880000000000-credential-version-revoked-at';
import { CredentialTypeConnectionIndex1920000000000 } from './1920000000000-credential-type-connection-index';
import { CredentialLastChangeIndex1970000000000 } from './1970000000000-credential-last-change-index';

export { CreateCredentialsTables1760000000000, CreateWrappedDataKeys1840000000000, CredentialKeysetIndexes1860000000000, CredentialExpiryScanCoveringIndex1870000000000, CredentialVersionRevokedAt1880000000000, CredentialTypeConnectionIndex1920000000000, CredentialLastChangeIndex1970000000000 };

/** Register these with the host's TypeOrmModule.forRoot({ migrations }), in this order. */
export const CREDENTIALS_MIGRATIONS = [CreateCredentialsTables1760000000000, CreateWrappedDataKeys1840000000000, CredentialKeysetIndexes1860000000000, CredentialExpiryScanCoveringIndex1870000000000, CredentialVersionRevokedAt1880000000000, CredentialTypeConnectionIndex1920000000000, CredentialLastChangeIndex1970000000000];
