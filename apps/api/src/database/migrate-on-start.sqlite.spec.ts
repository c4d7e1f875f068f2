import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { loadAppConfig } from '../config/app.config';
import { DatabasePathError } from './database-directory';
import { databaseOptions } from './database.options';
import { initializeHostDataSource } from './migrate-on-start';

describe('the host DataSource on an SQLite file', () => {
  let dir: string;
  let path: string;
  let dataSource: DataSource | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cv-host-db-'));
    path = join(dir, 'vault.sqlite');
  });
  afterEach(async () => {
    await dataSource?.destroy().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it("with DATABASE_SQLITE_WAL_WORKER, checkpoints its WAL outside the connection's commits, and stops with the DataSource", async () => {
    dataSource = await initializeHostDataSource(databaseOptions(loadAppConfig({ DATABASE_PATH: path, DATABASE_SQLITE_WAL_WORKER: 'true' })));
    await dataSource.query('CREATE TABLE probe (id INTEGER PRIMARY KEY, body TEXT)');
    await dataSource.query('PRAGMA wal_checkpoint(TRUNCATE)');
    const before = statSync(path).size;
    // ~100 frames: far below the connection's own auto-checkpoint, so only the worker copies them.
    for (let i = 0; i < 100; i++) await dataSource.query('INSERT INTO probe (body) VALUES (?)', ['x'.repeat(3000)]);
    const deadline = Date.now() + 5000;
    while (statSync(path).size <= before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(statSync(path).size).toBeGreaterThan(before);

    await dataSource.destroy();
    dataSource = await initializeHostDataSource(databaseOptions(loadAppConfig({ DATABASE_PATH: path })));
    expect(await dataSource.query('SELECT count(*) AS n FROM probe')).toEqual([{ n: 100 }]);
  });

  it('without it, leaves checkpoints to SQLite (nothing copied below its auto-checkpoint)', async () => {
    dataSource = await initializeHostDataSource(databaseOptions(loadAppConfig({ DATABASE_PATH: path })));
    await dataSource.query('CREATE TABLE probe (id INTEGER PRIMARY KEY, body TEXT)');
    await dataSource.query('PRAGMA wal_checkpoint(TRUNCATE)');
    const before = statSync(path).size;
    for (let i = 0; i < 100; i++) await dataSource.query('INSERT INTO probe (body) VALUES (?)', ['x'.repeat(3000)]);
    await new Promise((r) => setTimeout(r, 300));
    expect(statSync(path).size).toBe(before);
  });

  it('with the WAL worker, keeps the WAL bounded under a sustained write load', async () => {
    dataSource = await initializeHostDataSource(databaseOptions(loadAppConfig({ DATABASE_PATH: path, DATABASE_SQLITE_WAL_WORKER: 'true', DATABASE_SQLITE_WAL_AUTOCHECKPOINT: '1000' })));
    await dataSource.query('CREATE TABLE probe (id TEXT PRIMARY KEY, body TEXT)');
    let maxWal = 0;
    for (let batch = 0; batch < 300; batch++) {
      await dataSource.transaction(async (m) => {
        for (let i = 0; i < 32; i++) await m.query('INSERT INTO probe VALUES (?, ?)', [`${batch}-${i}-${Math.random()}`, 'x'.repeat(3000)]);
      });
      maxWal = Math.max(maxWal, statSync(`${path}-wal`).size);
    }
    // Every page of the file went through the WAL, so a WAL that never restarted would be larger than it.
    expect(statSync(path).size).toBeGreaterThan(24 * 1024 * 1024);
    // It restarts every 1000 frames (~4 MiB), plus a batch or so.
    expect(maxWal).toBeLessThan(8 * 1024 * 1024);
    expect(await dataSource.query('SELECT count(*) AS n FROM probe')).toEqual([{ n: 9600 }]);
  });

  it('fsyncs every commit (synchronous FULL) unless DATABASE_SQLITE_SYNCHRONOUS=normal opts out', async () => {
    dataSource = await initializeHostDataSource(databaseOptions(loadAppConfig({ DATABASE_PATH: path })));
    expect(await dataSource.query('PRAGMA synchronous')).toEqual([{ synchronous: 2 }]);
    await dataSource.destroy();
    dataSource = await initializeHostDataSource(databaseOptions(loadAppConfig({ DATABASE_PATH: path, DATABASE_SQLITE_SYNCHRONOUS: 'normal' })));
    expect(await dataSource.query('PRAGMA synchronous')).toEqual([{ synchronous: 1 }]);
    expect(() => loadAppConfig({ DATABASE_SQLITE_SYNCHRONOUS: 'off' })).toThrow(/DATABASE_SQLITE_SYNCHRONOUS/);
  });

  it("checkpoints the WAL after SQLite's 1000 pages, or DATABASE_SQLITE_WAL_AUTOCHECKPOINT's", async () => {
    dataSource = await initializeHostDataSource(databaseOptions(loadAppConfig({ DATABASE_PATH: path })));
    expect(await dataSource.query('PRAGMA wal_autocheckpoint')).toEqual([{ wal_autocheckpoint: 1000 }]);
    await dataSource.destroy();
    dataSource = await initializeHostDataSource(databaseOptions(loadAppConfig({ DATABASE_PATH: path, DATABASE_SQLITE_WAL_AUTOCHECKPOINT: '4000' })));
    expect(await dataSource.query('PRAGMA wal_autocheckpoint')).toEqual([{ wal_autocheckpoint: 4000 }]);
    for (const bad of ['0', '-1', '99', '1.5', 'many']) {
      expect(() => loadAppConfig({ DATABASE_SQLITE_WAL_AUTOCHECKPOINT: bad })).toThrow(/DATABASE_SQLITE_WAL_AUTOCHECKPOINT/);
    }
  });

  it("creates DATABASE_PATH's missing directories, and refuses one line naming the variable when a file is in the way or a directory cannot be made", () => {
    databaseOptions(loadAppConfig({ DATABASE_PATH: join(dir, 'a', 'b', 'vault.sqlite') }));
    expect(statSync(join(dir, 'a', 'b')).isDirectory()).toBe(true);

    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    for (const under of [join(file, 'vault.sqlite'), join(file, 'c', 'vault.sqlite')]) {
      expect(() => databaseOptions(loadAppConfig({ DATABASE_PATH: under }))).toThrow(
        new DatabasePathError(under, `${file} is a file, not a directory`),
      );
    }
    // procfs answers ENOENT to every mkdir: Node's recursive mkdirSync made /proc and retried the child forever.
    expect(() => databaseOptions(loadAppConfig({ DATABASE_PATH: '/proc/cv-no-such-dir/vault.sqlite' }))).toThrow(
      'cannot use the SQLite database file /proc/cv-no-such-dir/vault.sqlite (DATABASE_PATH): cannot create the directory /proc/cv-no-such-dir (ENOENT: no such file or directory, although /proc exists: that file system takes no new directories)',
    );
    expect(existsSync('/proc/cv-no-such-dir')).toBe(false);
  });
});
