import type { FactoryProvider } from '@nestjs/common';
import { Outbox, OutboxHandlerRegistry, TransactionRunner } from '@app/common';
import { CredentialsConfigurationError } from '../errors/credential-errors';

/**
 * What the lib takes from the host's `PersistenceModule` (@app/common): the transaction runner every
 * repository writes through, the outbox domain events are written to, and the handler registry that
 * shapes them for the event bus. Checked once, at startup.
 */
export class CredentialsPersistence {
  constructor(
    readonly runner: TransactionRunner,
    readonly outbox: Outbox,
    readonly handlers: OutboxHandlerRegistry,
  ) {}
}

const optional = (token: unknown) => ({ token: token as never, optional: true });

/**
 * Fails bootstrap with a `CredentialsConfigurationError` naming what to register, instead of Nest's
 * "cannot resolve dependencies" deep inside the lib. Not imported by the lib itself: the outbox needs
 * one dispatcher per host, so `PersistenceModule.forRoot()` is the host's, once.
 */
export const CREDENTIALS_PERSISTENCE_PROVIDER: FactoryProvider<CredentialsPersistence> = {
  provide: CredentialsPersistence,
  useFactory: (runner?: TransactionRunner, outbox?: Outbox, handlers?: OutboxHandlerRegistry) => {
    if (!runner || !outbox || !handlers) {
      const missing = [!runner && 'TransactionRunner', !outbox && 'Outbox', !handlers && 'OutboxHandlerRegistry'].filter(Boolean);
      throw new CredentialsConfigurationError(
        `CredentialsModule needs PersistenceModule.forRoot() (the common entry: @app/common in this repo, @credential-vault/nest/common from the package) in the host (missing: ${missing.join(', ')}); ` +
          'register it once, with OUTBOX_ENTITIES and OUTBOX_MIGRATIONS in TypeOrmModule.forRoot',
      );
    }
    return new CredentialsPersistence(runner, outbox, handlers);
  },
  inject: [optional(TransactionRunner), optional(Outbox), optional(OutboxHandlerRegistry)],
};
