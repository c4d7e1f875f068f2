import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JOURNAL_SUFFIX, SECRET_FIELDS, StorePersistence, STORE_FILE, ValueCipher } from './persistence';
import { SecretStore } from './secrets/store';

/** The secrets store's persistence: cost proportional to the change (a journal), crash-safe on reload. */
describe('StorePersistence (snapshot + journal)', () => {
  let dir: string;
  const options = { softDeleteRetentionDays: 7, purgeProtection: false, operationDelayMs: 0, vaultName: 'test' };
  const marker = 'PLAINTEXT-MARKER-4c1d';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kv-emu-journal-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const open = () => {
    const store = new SecretStore(options);
    const persistence = new StorePersistence(dir, store, ValueCipher.fromDataDir(dir), SECRET_FIELDS, 1);
    const loaded = persistence.load();
    persistence.attach();
    return { store, persistence, loaded };
  };
  const set = (store: SecretStore, name: string, value: string) => store.set(name, { value, attributes: {} });
  const values = (store: SecretStore) => Object.fromEntries([...store.all()].map((r) => [r.name, r.versions.map((v) => v.value)]));
  const size = (file: string) => statSync(join(dir, file)).size;

  it('appends only the changed records after the first snapshot, and a process that never closed (kill -9) reloads every flushed change', async () => {
    const a = open();
    for (let i = 0; i < 200; i++) set(a.store, `s-${i}`, `${marker}-${i}`);
    await a.persistence.flush(); // the first flush writes a snapshot
    const snapshotSize = size(STORE_FILE);
    set(a.store, 's-1', `${marker}-new`);
    a.store.delete('s-2');
    a.store.purge('s-2');
    await a.persistence.flush();
    // The snapshot was not rewritten; the journal holds one line per changed record (after its header).
    expect(size(STORE_FILE)).toBe(snapshotSize);
    const journal = readFileSync(join(dir, STORE_FILE + JOURNAL_SUFFIX), 'utf8');
    expect(journal.trim().split('\n')).toHaveLength(3);
    expect(journal).not.toContain(marker);
    expect(statSync(join(dir, STORE_FILE + JOURNAL_SUFFIX)).mode & 0o777).toBe(0o600);

    const b = open(); // `a` never closed: as after a crash
    expect(b.loaded).toBe(199);
    expect(values(b.store)).toEqual(values(a.store));
    expect(values(b.store)['s-1']).toEqual([`${marker}-1`, `${marker}-new`]);
    await b.persistence.close();
    await a.persistence.close();
  });

  it('ignores a torn last journal line (a crash mid-append) and rewrites the snapshot before appending again', async () => {
    const a = open();
    set(a.store, 'kept', 'v1');
    await a.persistence.flush();
    set(a.store, 'kept', 'v2');
    await a.persistence.flush();
    appendFileSync(join(dir, STORE_FILE + JOURNAL_SUFFIX), '{"put":{"name":"torn","vers');
    const b = open();
    expect(values(b.store)).toEqual({ kept: ['v1', 'v2'] });
    set(b.store, 'after', 'v3');
    await b.persistence.flush();
    const c = open();
    expect(values(c.store)).toEqual({ kept: ['v1', 'v2'], after: ['v3'] });
    for (const p of [a, b, c]) await p.persistence.close();
  });

  it('refuses a journal corrupted before its last line, and ignores one that does not continue the snapshot', async () => {
    const a = open();
    set(a.store, 'x', 'v1');
    await a.persistence.flush();
    set(a.store, 'x', 'v2');
    await a.persistence.flush();
    const journalPath = join(dir, STORE_FILE + JOURNAL_SUFFIX);
    const journal = readFileSync(journalPath, 'utf8');
    const [header, ...entries] = journal.trim().split('\n');
    writeFileSync(journalPath, [header, 'garbage', ...entries, ''].join('\n'));
    expect(() => open()).toThrow(/Corrupt journal line 2/);
    // A journal naming another snapshot (a crash between the snapshot's and the journal's rename) is stale.
    writeFileSync(journalPath, [JSON.stringify({ format: 1, snapshot: 'other' }), ...entries, ''].join('\n'));
    expect(values(open().store)).toEqual({ x: ['v1'] });
    await a.persistence.close();
  });

  it('folds the journal into a new snapshot once it outgrows the snapshot, and on close', async () => {
    const a = open();
    set(a.store, 'big', 'x');
    await a.persistence.flush();
    const first = readFileSync(join(dir, STORE_FILE), 'utf8');
    // Journal lines of ~13 kB each: past 1 MiB (~80 of them), a snapshot takes them in.
    for (let i = 0; i < 120; i++) {
      set(a.store, `big-${i}`, 'y'.repeat(10_000));
      await a.persistence.flush();
    }
    expect(readFileSync(join(dir, STORE_FILE), 'utf8')).not.toBe(first);
    expect(size(STORE_FILE + JOURNAL_SUFFIX)).toBeLessThan(1 << 20);
    set(a.store, 'last', 'z');
    await a.persistence.close();
    expect(readFileSync(join(dir, STORE_FILE + JOURNAL_SUFFIX), 'utf8').trim().split('\n')).toHaveLength(1);
    const b = open();
    expect(b.store.get('last').version.value).toBe('z');
    expect(b.store.size).toBe(122);
    await b.persistence.close();
  });
});
