import type { FactoryProvider } from '@nestjs/common';
import { DataSource, type EntityTarget } from 'typeorm';

/**
 * Fails bootstrap, with the lib's configuration error, when the host's DataSource does not know the
 * lib's entities: without them the first request failed with TypeORM's "No metadata for …", naming
 * neither the lib nor what to add. Provided under `token` (eagerly built by Nest, injected by no one).
 */
export function provideEntityCheck(
  token: symbol,
  moduleName: string,
  entities: ReadonlyArray<EntityTarget<unknown> & { name: string }>,
  arrays: { entities: string; migrations: string },
  configurationError: (message: string) => Error,
): FactoryProvider<true> {
  return {
    provide: token,
    useFactory: (dataSource?: DataSource): true => {
      // An uninitialised DataSource has no metadata yet (TypeORM builds it in initialize): nothing to tell.
      const missing = dataSource?.isInitialized ? entities.filter((e) => !dataSource.hasMetadata(e)).map((e) => e.name) : [];
      if (missing.length > 0) {
        throw configurationError(
          `${moduleName}'s tables are not in the host's DataSource (missing: ${missing.join(', ')}): add ${arrays.entities} to its entities and ${arrays.migrations} to its migrations`,
        );
      }
      return true;
    },
    inject: [{ token: DataSource, optional: true }],
  };
}
