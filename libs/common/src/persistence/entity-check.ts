import type { FactoryProvider } from '@nestjs/common';
import { DataSource, type EntityTarget } from 'typeorm';
import { sqlState } from '../errors';
import { warnOnMigrationsRun } from './migrate-on-start';

/**
 * Fails bootstrap, with the lib's configuration error, when the host's DataSource does not know the
 * lib's entities, or their tables do not exist (migrations not run): without this the first request
 * failed with TypeORM's "No metadata for …" or the database's "relation … does not exist", naming
 * neither the lib nor what to add. Provided under `token` (eagerly built by Nest, injected by no one).
 * Also warns about `migrationsRun: true` (`warnOnMigrationsRun`).
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
    useFactory: async (dataSource?: DataSource): Promise<true> => {
      if (dataSource) warnOnMigrationsRun(dataSource, moduleName);
      // An uninitialised DataSource has no metadata yet (TypeORM builds it in initialize): nothing to tell.
      if (!dataSource?.isInitialized) return true;
      const missing = entities.filter((e) => !dataSource.hasMetadata(e)).map((e) => e.name);
      if (missing.length > 0) {
        throw configurationError(
          `${moduleName}'s tables are not in the host's DataSource (missing: ${missing.join(', ')}): add ${arrays.entities} to its entities and ${arrays.migrations} to its migrations`,
        );
      }
      const absent = (await Promise.all(entities.map(async (e) => ((await tableExists(dataSource, e)) ? null : dataSource.getMetadata(e).tableName)))).filter(Boolean);
      if (absent.length > 0) {
        throw configurationError(
          `${moduleName}'s tables do not exist in the database (${absent.join(', ')}): run ${arrays.migrations} before the app starts (initializeWithMigrations does)`,
        );
      }
      return true;
    },
    inject: [{ token: DataSource, optional: true }],
  };
}

/** False only when the database says the table is not there (42P01, SQLite's "no such table"); any other failure is not this check's to report. */
async function tableExists(dataSource: DataSource, entity: EntityTarget<unknown>): Promise<boolean> {
  const path = dataSource
    .getMetadata(entity)
    .tablePath.split('.')
    .map((part) => dataSource.driver.escape(part))
    .join('.');
  try {
    await dataSource.query(`SELECT 1 FROM ${path} WHERE 1 = 0`);
    return true;
  } catch (e) {
    return !(sqlState(e) === '42P01' || /no such table/i.test(String((e as Error)?.message)));
  }
}
