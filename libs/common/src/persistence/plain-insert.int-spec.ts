import { createTestDatabase, DATABASE_KINDS, TestDatabase } from '@app/testing';
import { Column, DataSource, Entity, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';
import { epochMsDate, jsonText } from './column-transformers';
import { insertPlainRows, PLAIN_INSERT_SQLITE_CHUNK, type StoredRow } from './plain-insert';
import { NamedStatementRefusedError } from './persistence.errors';
import { TransactionRunner } from './transaction-runner';

/** Every kind of column the libs store, plus a boolean and a bigint beyond 2^53. */
@Entity({ name: 'cv_test_plain_rows' })
class PlainRow {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'batch_key', type: 'varchar', length: 64 })
  batch: string;

  @Column({ type: 'varchar', length: 64, nullable: true })
  label: string | null;

  @Column({ name: 'at_ms', type: 'bigint', nullable: true, transformer: epochMsDate })
  at: Date | null;

  @Column({ type: 'text', nullable: true, transformer: jsonText })
  doc: object | null;

  /** Read back as text: beyond 2^53 neither driver returns it exactly as a number. */
  @Column({ type: 'bigint', nullable: true })
  big: string | null;

  @Column({ type: 'boolean', default: false })
  flag: boolean;

  @Column({ type: 'integer', default: 7 })
  count: number;
}

@Entity({ name: 'cv_test_plain_generated' })
class GeneratedRow {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ type: 'varchar', length: 8 })
  name: string;
}

/** The caller's shape of a row, mapped by hand to stored values (the audit and outbox style). */
interface Input {
  id: string;
  batch: string;
  label: string | null;
  atMs: number | null;
  docJson: string | null;
  big: bigint | null;
  flag?: boolean;
}
const stored = (r: Input): StoredRow<PlainRow> => ({
  id: r.id,
  batch: r.batch,
  label: r.label,
  at: r.atMs,
  doc: r.docJson,
  big: r.big,
  flag: r.flag,
  count: undefined,
});

const BIG = '9007199254740993'; // 2^53 + 1
let seq = 0;
const id = () => `row-${++seq}`;

describe.each(DATABASE_KINDS)('insertPlainRows on %s', (kind) => {
  let db: TestDatabase;
  let ds: DataSource;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    // PostgreSQL: the test database is a schema of its own; without it on the search path, only a
    // schema-qualified statement finds the table.
    const options = kind === 'postgres' ? { ...db.options, extra: { max: 4 } } : db.options;
    ds = await new DataSource({ ...options, entities: [PlainRow, GeneratedRow], synchronize: true }).initialize();
  });
  afterAll(async () => {
    if (ds?.isInitialized) await ds.destroy();
    await db?.drop();
  });

  const table = () => ds.getMetadata(PlainRow).tablePath.split('.').map((n) => ds.driver.escape(n)).join('.');
  const p = (i: number) => (kind === 'postgres' ? `$${i}` : '?');

  /** Rows of a batch as the database stores them, in id order, the bigint as text, without the id. */
  async function storedRows(batch: string): Promise<Record<string, unknown>[]> {
    const rows = (await ds.query(`SELECT *, CAST(big AS TEXT) AS big_text FROM ${table()} WHERE batch_key = ${p(1)} ORDER BY id`, [batch])) as Record<string, unknown>[];
    return rows.map(({ id: _id, big: _big, ...rest }) => rest);
  }
  const count = async (batch: string) => Number(((await ds.query(`SELECT count(*) AS n FROM ${table()} WHERE batch_key = ${p(1)}`, [batch])) as [{ n: unknown }])[0].n);

  function entities(batch: string): PlainRow[] {
    const base = { batch, label: null, at: null, doc: null, big: null, flag: false, count: 1 };
    return [
      { ...base, id: `${batch}-a`, label: 'ïntégration "quoted" \'x\' ✓', at: new Date(Date.UTC(2200, 11, 31, 23, 59, 59, 999)), doc: { b: 1, a: ['ключ 🔑', null, true] }, big: BIG, flag: true, count: -3 },
      { ...base, id: `${batch}-b` },
      // Left out: the columns' defaults, as TypeORM writes them.
      { ...base, id: `${batch}-c`, flag: undefined as unknown as boolean, count: undefined as unknown as number },
    ];
  }

  it('stores entities column by column as TypeORM’s insert does: strings, nulls, epoch-ms dates, JSON, bigint, booleans, defaults', async () => {
    await ds.manager.insert(PlainRow, entities('ref'));
    await insertPlainRows(ds.manager, PlainRow, entities('mine'));
    const reference = await storedRows('ref');
    const mine = await storedRows('mine');
    expect(mine).toHaveLength(3);
    expect(mine.map((r) => ({ ...r, batch_key: 'ref' }))).toStrictEqual(reference);
    expect(mine[0]).toMatchObject({ big_text: BIG, at_ms: kind === 'postgres' ? '7289654399999' : 7289654399999, doc: '{"b":1,"a":["ключ 🔑",null,true]}' });
    expect(mine[2]).toMatchObject({ flag: kind === 'postgres' ? false : 0, count: 7 });
    // And TypeORM reads back the entities that were written.
    const read = await ds.manager.find(PlainRow, { where: { batch: 'mine' }, order: { id: 'ASC' } });
    expect(read.map(({ big: _b, ...r }) => r)).toEqual(entities('mine').map(({ big: _b, ...r }) => ({ ...r, flag: r.flag ?? false, count: r.count ?? 7 })));
  });

  it('stores a mapper’s values as the transformers would: the same rows as the entities', async () => {
    await ds.manager.insert(PlainRow, entities('ref2'));
    const inputs: Input[] = entities('mapped').map((e) => ({
      id: e.id,
      batch: e.batch,
      label: e.label,
      atMs: e.at?.getTime() ?? null,
      docJson: e.doc && JSON.stringify(e.doc),
      big: e.big === null ? null : BigInt(e.big),
      flag: e.flag,
    }));
    await insertPlainRows(ds.manager, PlainRow, inputs, stored);
    // `count` is left undefined by the mapper: its default, where the entities said 1 and -3.
    const reference = (await storedRows('ref2')).map((r) => ({ ...r, count: 7 }));
    expect((await storedRows('mapped')).map((r) => ({ ...r, batch_key: 'ref2' }))).toStrictEqual(reference);
  });

  it('stores text byte for byte: JSON escapes, control characters, spaces, JSON-looking text with unsorted and repeated keys', async () => {
    const texts = [
      'back\\slash "q" \n\t\r \u0001 \u2028 \u{1F511} é',
      '  leading and trailing  ',
      '{"b": 1, "a": 2, "a": 3}',
      '1.50',
      '-0',
      '1e400',
    ];
    const rows = texts.map((text, i) => ({ id: `text-${i}`, batch: 'text', label: null, atMs: null, docJson: text, big: null }));
    await insertPlainRows(ds.manager, PlainRow, rows, stored);
    const read = (await ds.query(`SELECT doc FROM ${table()} WHERE batch_key = ${p(1)} ORDER BY id`, ['text'])) as Array<{ doc: string }>;
    expect(read.map((r) => r.doc)).toEqual(texts);
  });

  it('an empty batch writes nothing and sends no statement', async () => {
    const query = jest.spyOn(ds.manager, 'query');
    await insertPlainRows(ds.manager, PlainRow, []);
    await insertPlainRows(ds.manager, PlainRow, [], stored);
    expect(query).not.toHaveBeenCalled();
    query.mockRestore();
  });

  it('a batch larger than one statement is written whole in the caller’s transaction, or not at all', async () => {
    const runner = new TransactionRunner(ds);
    const rows = (batch: string, n: number) => Array.from({ length: n }, (_, i) => ({ ...entities(batch)[i % 3], id: `${batch}-${String(i).padStart(4, '0')}` }));
    const many = rows('many', 2 * PLAIN_INSERT_SQLITE_CHUNK + 5);
    await runner.run(() => insertPlainRows(runner.manager, PlainRow, many));
    expect(await count('many')).toBe(many.length);
    expect((await storedRows('many'))[many.length - 1]).toMatchObject({ label: many[many.length - 1].label, count: many[many.length - 1].count ?? 7 });

    await expect(
      runner.run(async () => {
        await insertPlainRows(runner.manager, PlainRow, rows('doomed', PLAIN_INSERT_SQLITE_CHUNK + 1));
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(await count('doomed')).toBe(0);
  });

  it('a value the column refuses fails the whole batch, as TypeORM’s insert would', async () => {
    const [ok] = entities('refused');
    const tooLong = { ...ok, id: id(), label: 'x'.repeat(65) };
    const duplicate = { ...ok };
    // PostgreSQL checks varchar lengths; SQLite does not (nor does TypeORM's insert there).
    if (kind === 'postgres') await expect(ds.transaction((m) => insertPlainRows(m, PlainRow, [ok, tooLong]))).rejects.toThrow(/too long/);
    await expect(ds.transaction((m) => insertPlainRows(m, PlainRow, [ok, duplicate]))).rejects.toThrow(/unique|duplicate/i);
    expect(await count('refused')).toBe(0);
  });

  it('a number JSON cannot carry is refused on PostgreSQL, not stored as NULL', async () => {
    const [row] = entities('nan');
    const write = ds.transaction((m) => insertPlainRows(m, PlainRow, [{ ...row, count: Number.NaN }]));
    if (kind === 'postgres') {
      await expect(write).rejects.toThrow('PlainRow.count is NaN, not a finite number');
      expect(await count('nan')).toBe(0);
    } else {
      // SQLite binds NaN as NULL, as TypeORM's insert does: the NOT NULL column refuses it.
      await expect(write).rejects.toThrow(/NOT NULL/);
    }
  });

  it('refuses an entity whose columns TypeORM’s builder fills itself', async () => {
    await expect(insertPlainRows(ds.manager, GeneratedRow, [{ id: 1, name: 'x' }])).rejects.toThrow(/GeneratedRow\.id is filled by TypeORM/);
  });
});

describe.each([
  ['named statement', true],
  ['simple query', false],
])('insertPlainRows on postgres with postgresLocks, %s', (_mode, prepared) => {
  let db: TestDatabase;
  let ds: DataSource;
  const keys = ['8123456789012345678', '-42'];

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    ds = await new DataSource({ ...db.options, entities: [PlainRow, GeneratedRow], synchronize: true, extra: { max: 3 } } as never).initialize();
  });
  afterAll(async () => {
    if (ds?.isInitialized) await ds.destroy();
    await db?.drop();
  });

  const table = () => ds.getMetadata(PlainRow).tablePath.split('.').map((n) => ds.driver.escape(n)).join('.');
  const rows = (batch: string, n: number): Input[] =>
    Array.from({ length: n }, (_, i) => ({ id: `${batch}-${i}`, batch, label: `$1 $& $cvj$ '${i}'`, atMs: 1_700_000_000_000 + i, docJson: `{"i":${i}}`, big: BigInt(BIG), flag: i % 2 === 0 }));
  const storedOf = async (batch: string) =>
    (await ds.query(`SELECT id, label, at_ms::text AS at, doc, big::text AS big, flag FROM ${table()} WHERE batch_key = $1 ORDER BY id`, [batch])) as Array<Record<string, unknown>>;

  it('stores the rows as the plain statement does, batch after batch on the same pooled connections', async () => {
    for (let round = 0; round < 8; round++) {
      await insertPlainRows(ds.manager, PlainRow, rows(`locked-${round}`, 5), stored, { postgresLocks: { keys, prepared } });
    }
    await insertPlainRows(ds.manager, PlainRow, rows('plain', 5), stored);
    const plain = await storedOf('plain');
    for (let round = 0; round < 8; round++) {
      const mine = await storedOf(`locked-${round}`);
      expect(mine.map((r) => ({ ...r, id: String(r.id).replace(/^locked-\d+/, 'plain') }))).toEqual(plain);
    }
    expect(plain[0]).toEqual({ id: 'plain-0', label: "$1 $& $cvj$ '0'", at: '1700000000000', doc: '{"i":0}', big: BIG, flag: true });
  });

  it('takes every lock before it inserts a row and holds it until its rows commit', async () => {
    const holder = ds.createQueryRunner();
    await holder.connect();
    await holder.startTransaction();
    await holder.query(`SELECT pg_advisory_xact_lock('${keys[1]}'::bigint)`); // the second key only
    let done = false;
    const write = insertPlainRows(ds.manager, PlainRow, rows('waits', 3), stored, { postgresLocks: { keys, prepared } }).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 300));
    // Waiting on the held key (nothing committed), the first key already its; the audit's optimistic-append
    // spec shows the rows come after the lock (a locked writer between head read and insert is not overtaken).
    expect(done).toBe(false);
    expect(Number((await ds.query(`SELECT count(*) AS n FROM ${table()} WHERE batch_key = 'waits'`))[0].n)).toBe(0);
    const firstKeyFree = (await ds.query(`SELECT pg_try_advisory_lock('${keys[0]}'::bigint) AS free`)) as [{ free: boolean }];
    expect(firstKeyFree[0].free).toBe(false);
    await holder.commitTransaction();
    await holder.release();
    await write;
    expect((await storedOf('waits')).map((r) => r.id)).toEqual(['waits-0', 'waits-1', 'waits-2']);
    // Released at commit: another session takes both keys at once.
    const free = (await ds.query(`SELECT pg_try_advisory_xact_lock('${keys[0]}'::bigint) AND pg_try_advisory_xact_lock('${keys[1]}'::bigint) AS free`)) as [{ free: boolean }];
    expect(free[0].free).toBe(true);
  });

  it('refuses a lock key that is not an integer, and a call inside a transaction, before sending anything', async () => {
    await expect(insertPlainRows(ds.manager, PlainRow, rows('bad-key', 1), stored, { postgresLocks: { keys: ["1); DROP TABLE x; --"], prepared } })).rejects.toThrow(
      /advisory lock key is not an integer/,
    );
    await expect(
      ds.transaction((m) => insertPlainRows(m, PlainRow, rows('in-tx', 1), stored, { postgresLocks: { keys, prepared } })),
    ).rejects.toThrow(/not inside a transaction/);
    expect(await storedOf('bad-key')).toEqual([]);
    expect(await storedOf('in-tx')).toEqual([]);
  });

  // The named statement's own failure (the simple query has no statement to lose).
  if (prepared) {
    it('a pooler that loses the named statement gets NamedStatementRefusedError naming the way out, not a bare driver error', async () => {
      // One connection: what it prepared is dropped behind node-postgres' back, as when a pooler in
      // transaction mode hands the next statement to another server connection.
      const one = await new DataSource({ ...db.options, entities: [PlainRow, GeneratedRow], extra: { max: 1 } } as never).initialize();
      try {
        await insertPlainRows(one.manager, PlainRow, rows('pooled-1', 1), stored, { postgresLocks: { keys, prepared } });
        await one.query('DEALLOCATE ALL');
        const refused = insertPlainRows(one.manager, PlainRow, rows('pooled-2', 1), stored, { postgresLocks: { keys, prepared } });
        await expect(refused).rejects.toBeInstanceOf(NamedStatementRefusedError);
        await expect(refused).rejects.toMatchObject({ code: 6005, cause: expect.objectContaining({ code: '26000' }) });
        await expect(refused).rejects.toThrow(/pooler in transaction mode[\s\S]*preparedStatements: false/);
        expect(await storedOf('pooled-2')).toEqual([]);
      } finally {
        await one.destroy();
      }
    });
  }

  it('a failing batch inserts nothing and is reported through the DataSource logger', async () => {
    const logged = jest.spyOn(ds.logger, 'logQueryError');
    const dup = rows('dup', 2);
    await expect(insertPlainRows(ds.manager, PlainRow, [dup[0], dup[1], dup[0]], stored, { postgresLocks: { keys, prepared } })).rejects.toMatchObject({ code: '23505' });
    expect(await storedOf('dup')).toEqual([]);
    expect(logged).toHaveBeenCalledTimes(1);
    logged.mockRestore();
  });
});
