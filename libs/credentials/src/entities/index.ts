import { CredentialVersionEntity } from './credential-version.entity';
import { CredentialEntity } from './credential.entity';
import { EnvelopeValueEntity } from './envelope-value.entity';
import { WrappedDataKeyEntity } from './wrapped-data-key.entity';

export { CredentialEntity, CredentialVersionEntity, EnvelopeValueEntity, WrappedDataKeyEntity };
export type { StoredCertificateInfo } from './credential.entity';

/** Register these with the host's TypeOrmModule.forRoot({ entities }). */
export const CREDENTIALS_ENTITIES = [CredentialEntity, CredentialVersionEntity, EnvelopeValueEntity, WrappedDataKeyEntity];
