import { randomBytes } from 'node:crypto';
import { ValueStoreKind } from '@app/credentials';
import { MigrationConfigurationError } from './errors/migration.errors';
import { resolveMigrationOptions } from './migration.options';
import { resolveLegacyMapping } from './sources/legacy-mapping';

describe('MigrationModule options', () => {
  const key = randomBytes(32);

  it('applies defaults and decodes keys', () => {
    const o = resolveMigrationOptions({ keys: [key.toString('hex'), key.toString('base64')] });
    expect(o).toMatchObject({ batchSize: 10, concurrency: { initial: 4, min: 1, max: 64, slowCallMs: 1000 }, maxThrottleRetries: 30 });
    expect(o.keys).toEqual([key, key]);
  });

  it('lists every problem in one error and never quotes a key', () => {
    const bad = 'hunter2-not-a-key';
    const e = (() => { try { resolveMigrationOptions({ keys: [bad], batchSize: 0, concurrency: { initial: 9, max: 2 } }); } catch (x) { return x as MigrationConfigurationError; } })()!;
    expect(e).toBeInstanceOf(MigrationConfigurationError);
    expect(e.problems.map((p) => p.path).sort()).toEqual(['batchSize', 'concurrency', 'keys.0']);
    expect(e.message).not.toContain('hunter2');
  });

  it('checks min <= initial <= max even when another concurrency field has the wrong type', () => {
    const e = (() => { try { resolveMigrationOptions({ keys: [key.toString('hex')], concurrency: { initial: 9, max: 2, slowCallMs: 'slow' as never } }); } catch (x) { return x as MigrationConfigurationError; } })()!;
    expect(e.problems.map((p) => p.path).sort()).toEqual(['concurrency', 'concurrency.slowCallMs']);
  });

  // Type-level too (tsc): a plain 'envelope' compiles, an unknown string does not (and is refused at run time).
  it("takes valueStore as its string value ('envelope'), resolved to the enum; an unknown one is refused", () => {
    const kind: ValueStoreKind | undefined = resolveMigrationOptions({ keys: [key.toString('hex')], valueStore: 'envelope' }).valueStore;
    expect(kind).toBe(ValueStoreKind.ENVELOPE);
    // @ts-expect-error not a value store
    const e = (() => { try { resolveMigrationOptions({ keys: [key.toString('hex')], valueStore: 'disk' }); } catch (x) { return x as MigrationConfigurationError; } })()!;
    expect(e.problems.map((p) => p.path)).toEqual(['valueStore']);
  });

  it('refuses mapping names that are not plain identifiers', () => {
    expect(() => resolveLegacyMapping({ table: 'x; DROP TABLE y', fields: { api_key: 'k"ey' } })).toThrow(MigrationConfigurationError);
    expect(() => resolveLegacyMapping({ fields: {} })).toThrow(/mapping.fields/);
    // A mapping is not the module's options: the message says which it is.
    expect(() => resolveLegacyMapping({ fields: {} })).toThrow(/^Invalid legacy mapping — mapping\.fields: /);
  });
});
