import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { EmulatorDataDirInUseError } from '@app/keyvault-emulator';
import { loadAppConfig } from '../config/app.config';
import { startFailureFields } from '../http/error-log-fields';
import { EmbeddedVault, EmbeddedVaultDataDirInUseError } from './embedded-vault';

describe('EmbeddedVaultDataDirInUseError', () => {
  const held = () => new EmbeddedVaultDataDirInUseError(new EmulatorDataDirInUseError('/srv/cv/data/vault', 4242));

  it("keeps the holder's facts for whoever catches it", () => {
    const e = held();
    expect([e.code, e.dataDir, e.pid, e.lockFile]).toEqual(['DATA_DIR_IN_USE', '/srv/cv/data/vault', 4242, '/srv/cv/data/vault/emulator.pid']);
  });

  // The host's "Failed to start" line logs the cause chain's messages (startFailureFields): the local vault's own advice
  // to code that starts it ("another dataDir (leave it out for a temporary one)") is wrong for the host, whose
  // EMULATOR_DATA_DIR left out is ./data/vault.
  it("reaches the host's failed-start log in the host's terms only: not the local vault's advice to code that embeds it", () => {
    const logged = JSON.stringify(startFailureFields(held()));
    expect(logged).toContain('(EMULATOR_DATA_DIR) is in use by the local Key Vault of process 4242');
    expect(logged).toContain('delete /srv/cv/data/vault/emulator.pid');
    expect(logged).not.toMatch(/dataDir|temporary/);
  });
});

describe('EmbeddedVault.start on PostgreSQL', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  // Replicas on one PostgreSQL each started with their own embedded vault go ready, and each answers 500
  // VALUE_MISSING for every value another one stored: the warning must say so before the first request does.
  async function startWarnings(databaseType: 'postgres' | 'sqlite'): Promise<string[]> {
    const dataDir = mkdtempSync(join(tmpdir(), 'cv-embedded-'));
    dirs.push(dataDir);
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const config = loadAppConfig({
      NODE_ENV: 'test',
      EMULATOR_PORT: '0',
      EMULATOR_DATA_DIR: dataDir,
      ...(databaseType === 'postgres' ? { DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://u@127.0.0.1:5432/db' } : {}),
    });
    const vault = await EmbeddedVault.start(config);
    try {
      return warn.mock.calls.map((c) => String(c[0]));
    } finally {
      warn.mockRestore();
      await vault.onApplicationShutdown();
    }
  }

  it('warns that other replicas on the database cannot read what this vault holds, and names the way to share one', async () => {
    const text = (await startWarnings('postgres')).join('\n');
    expect(text).toContain('Using the embedded LOCAL Key Vault');
    expect(text).toMatch(/other replicas on this database cannot read the values this one stores \(VALUE_MISSING, 500\)/);
    expect(text).toContain('KEY_VAULT_URL');
    expect(text).toContain('docs/OPERATIONS.md');
  });

  it('on SQLite (one process) says nothing of replicas', async () => {
    expect((await startWarnings('sqlite')).join('\n')).not.toMatch(/replica/);
  });
});
