import { HostPersistence, provideHostPersistence } from '@app/common';
import { CredentialsConfigurationError } from '../errors/credential-errors';

/**
 * What the lib takes from the host's `PersistenceModule` (@app/common): the transaction runner every
 * repository writes through, the outbox domain events are written to, and the handler registry that
 * shapes them for the event bus. Checked once, at startup.
 */
export class CredentialsPersistence extends HostPersistence {}

/** Fails bootstrap with a `CredentialsConfigurationError` naming PersistenceModule.forRoot() when the host lacks it. */
export const CREDENTIALS_PERSISTENCE_PROVIDER = provideHostPersistence(CredentialsPersistence, 'CredentialsModule', (message) => new CredentialsConfigurationError(message));
