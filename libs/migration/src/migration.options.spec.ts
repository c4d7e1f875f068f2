import { randomBytes } from 'node:crypto';
import { ValueStoreKind } from '@app/credentials';
import { MigrationConfigurationError } from './errors/migration.errors';
import { resolveMigrationOptions } from './migration.options';
import { resolveLegacyMapping } from './sources/legacy-mapping';

describe('MigrationModule options', () => {
  const key = randomBytes(32);

  it('applies defaults and decodes keys', () => {
    const o = resolveMigrationOptions({ keys: [key.toString('hex'), key.toString('base64')] });
    expect(o).toMatchObject({ batchSize: 10, concurrency: { initial: 4, min: 1, max: 64, slowCallMs: 1000 }, maxThrottleRetries: 30, maxVaultOutageMs: 120_000 });
    expect(o.keys).toEqual([key, key]);
  });

  it('lists every problem in one error and never quotes a key', () => {
    const bad = 'hunter2-not-a-key';
    const e = (() => { try { resolveMigrationOptions({ keys: [bad], batchSize: 0, concurrency: { initial: 9, max: 2 } }); } catch (x) { return x as MigrationConfigurationError; } })()!;
    expect(e).toBeInstanceOf(MigrationConfigurationError);
    expect(e.problems.map((p) => p.path).sort()).toEqual(['batchSize', 'concurrency', 'keys.0']);
    expect(e.message).not.toContain('hunter2');
  });

  it('names a misspelt key in a nested option (not "must be an object")', () => {
    expect(() => resolveMigrationOptions({ keys: [{ id: 'k1', key: randomBytes(32) }], concurrency: { maximum: 8 }, group: { maxConnection: 5 } } as never)).toThrow(
      /concurrency: Unrecognized key: "maximum"[\s\S]*group: Unrecognized key: "maxConnection"; did you mean "maxConnections"/,
    );
  });

  it('checks min <= initial <= max even when another concurrency field has the wrong type', () => {
    const e = (() => { try { resolveMigrationOptions({ keys: [key.toString('hex')], concurrency: { initial: 9, max: 2, slowCallMs: 'slow' as never } }); } catch (x) { return x as MigrationConfigurationError; } })()!;
    expect(e.problems.map((p) => p.path).sort()).toEqual(['concurrency', 'concurrency.slowCallMs']);
  });

  it('says what each option wants, as the other libs\' options errors do (never zod\'s "Invalid input: expected …"), listing every problem', () => {
    const attempt = () =>
      resolveMigrationOptions({
        keys: [5, 'not-a-key'],
        batchSize: '10',
        concurrency: { initial: 0, min: 'x', max: 2000, slowCallMs: -1 },
        group: { maxConnections: 1.5 },
        maxThrottleRetries: 'x',
        maxVaultOutageMs: 600_000,
        valueStore: 'disk',
      } as never);
    expect(attempt).toThrow(MigrationConfigurationError);
    expect(attempt).toThrow(
      [
        'Invalid MigrationModule options:',
        '  - keys.0: must be 32 bytes as 64 hex characters or base64',
        '  - keys.1: must be 32 bytes as 64 hex characters or base64',
        '  - batchSize: must be an integer in 1..10000',
        '  - concurrency.initial: must be an integer in 1..1024',
        '  - concurrency.min: must be an integer in 1..1024',
        '  - concurrency.max: must be an integer in 1..1024',
        '  - concurrency.slowCallMs: must be an integer of milliseconds in 0..600000 (0: off)',
        '  - group.maxConnections: must be an integer in 1..10000',
        '  - maxThrottleRetries: must be an integer in 0..1000',
        '  - maxVaultOutageMs: must be an integer of milliseconds in 0..300000 (0: stop at the first failure)',
        "  - valueStore: must be 'vault' or 'envelope'",
      ].join('\n'),
    );
    const needsKeys = 'must list the legacy keys (at least one), each 32 bytes as 64 hex characters or base64';
    expect(() => resolveMigrationOptions(undefined as never)).toThrow(`Invalid MigrationModule options:\n  - keys: ${needsKeys}`);
    expect(() => resolveMigrationOptions({ keys: 'abc', concurrency: 5, group: 'x' } as never)).toThrow(
      `Invalid MigrationModule options:\n  - keys: ${needsKeys}\n  - concurrency: must be an object\n  - group: must be an object`,
    );
    expect(() => resolveMigrationOptions({ keys: [] })).toThrow(`Invalid MigrationModule options:\n  - keys: ${needsKeys}`);
    expect(() => resolveMigrationOptions(7 as never)).toThrow('Invalid MigrationModule options:\n  - (options): must be an object');
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
    expect(() => resolveLegacyMapping({ fields: {} })).toThrow(/^Invalid legacy mapping:\n {2}- mapping\.fields: /);
  });

  it('refuses a mapping whose names are not strings, or whose fields are not an object, listing each (LEGACY_MAPPING is JSON: a number is a slip away)', () => {
    // Before: `r.table.split is not a function` for the table; `fields: "x"` spread to { 0: 'x' }.
    expect(() => resolveLegacyMapping({ table: 5, idColumn: 7, createdAtColumn: false, fields: 'api_key' } as never)).toThrow(
      [
        'Invalid legacy mapping:',
        '  - mapping.table: must be a plain SQL identifier (schema.table allowed)',
        '  - mapping.idColumn: must be a plain SQL identifier',
        '  - mapping.createdAtColumn: must be a plain SQL identifier',
        '  - mapping.fields: must be an object of credential type → column',
      ].join('\n'),
    );
  });
});
