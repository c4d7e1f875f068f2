import { CreateCredentialsTables1760000000000 } from './1760000000000-create-credentials-tables';

export { CreateCredentialsTables1760000000000 };

/** Register these with the host's TypeOrmModule.forRoot({ migrations }), in this order. */
export const CREDENTIALS_MIGRATIONS = [CreateCredentialsTables1760000000000];
