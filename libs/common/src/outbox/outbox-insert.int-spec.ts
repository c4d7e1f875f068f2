import { createTestDatabase, DATABASE_KINDS, TestDatabase } from '@app/testing';
import { DataSource } from 'typeorm';
import { PLAIN_INSERT_SQLITE_CHUNK } from '../persistence/plain-insert';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS } from './index';
import { OutboxEventEntity } from './outbox-event.entity';
import { insertOutboxRows, type NewOutboxRow } from './outbox-insert';

// The outbox's batch insert runs plain SQL; what TypeORM's insert writes for a new event is the reference.
describe.each(DATABASE_KINDS)('insertOutboxRows on %s', (kind) => {
  let db: TestDatabase;
  let ds: DataSource;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    ds = await new DataSource({ ...db.options, entities: OUTBOX_ENTITIES, migrations: OUTBOX_MIGRATIONS, migrationsRun: true }).initialize();
  });
  afterAll(async () => {
    if (ds?.isInitialized) await ds.destroy();
    await db?.drop();
  });

  const p = (i: number) => (kind === 'postgres' ? `$${i}` : '?');
  async function stored(id: string): Promise<Record<string, unknown>> {
    const [row] = (await ds.query(`SELECT * FROM cv_outbox WHERE id = ${p(1)}`, [id])) as Record<string, unknown>[];
    const { id: _id, ...rest } = row;
    return rest;
  }

  const createdAt = new Date(Date.UTC(2200, 11, 31, 23, 59, 59, 999));
  const payload = { credentialId: 'c-1', tags: { 'ключ': 'значение 🔑', q: '"quoted" \'x\'' }, n: 1 };
  const variants = (prefix: string): NewOutboxRow[] => [
    { id: `${prefix}-full`, name: 'credential.stored', tenantId: 'tenant-ü', payloadJson: JSON.stringify(payload), createdAtMs: createdAt.getTime() },
    { id: `${prefix}-global`, name: 'key.rotated', tenantId: null, payloadJson: '{}', createdAtMs: 0 },
  ];

  it('stores a new event column by column as TypeORM’s insert of the entity does (due now, not attempted, not delivered)', async () => {
    const mine = variants('mine');
    for (const r of variants('ref')) {
      await ds.manager.insert(OutboxEventEntity, {
        id: r.id,
        name: r.name,
        tenantId: r.tenantId,
        payload: JSON.parse(r.payloadJson) as object,
        createdAt: new Date(r.createdAtMs),
        availableAt: new Date(r.createdAtMs),
        deliveredAt: null,
      });
    }
    await ds.transaction((m) => insertOutboxRows(m, mine));
    for (const suffix of ['full', 'global']) expect(await stored(`mine-${suffix}`)).toStrictEqual(await stored(`ref-${suffix}`));
    expect(await ds.manager.findOneBy(OutboxEventEntity, { id: 'mine-full' })).toEqual({
      id: 'mine-full',
      name: 'credential.stored',
      tenantId: 'tenant-ü',
      payload,
      createdAt,
      availableAt: createdAt,
      attempts: 0,
      lastError: null,
      deliveredAt: null,
    });
  });

  it('writes a batch larger than one statement whole, and an empty one not at all', async () => {
    const many = Array.from({ length: 2 * PLAIN_INSERT_SQLITE_CHUNK + 3 }, (_, i) => ({ ...variants(`many-${i}`)[0] }));
    const before = await ds.manager.count(OutboxEventEntity);
    await ds.transaction(async (m) => {
      await insertOutboxRows(m, many);
      await insertOutboxRows(m, []);
    });
    expect(await ds.manager.count(OutboxEventEntity)).toBe(before + many.length);
  });
});
