import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateApiKey } from '../../apps/api/src/auth/api-keys';
import { scratchDir, ServerProcess } from './server-process';
import { VaultProcess } from './vault-process';

export interface CacheMemory {
  entries: number;
  valueBytes: number;
  idleHostMb: number;
  aboveIdleMb: number;
  perEntryBytes: number;
  method: string;
}

const MB = 1024 * 1024;

/**
 * RSS of the reference host (its own process, `--expose-gc`) when idle, and after its in-process
 * credential cache holds `entries` credentials with values of `valueBytes`.
 */
export async function measureCacheMemory(entries: number, valueBytes: number): Promise<CacheMemory> {
  const scratch = scratchDir('cv-bench-cache-mem-');
  const vault = await VaultProcess.start({ dataDir: join(scratch.dir, 'vault'), throttle: { limit: 1_000_000, windowMs: 1000 } });
  const caCertPath = join(scratch.dir, 'ca.pem');
  writeFileSync(caCertPath, vault.caCertPem);
  const key = generateApiKey('bench', 'bench', ['admin']);
  const host = await ServerProcess.start(
    { kind: 'host', vaultUrl: vault.vaultUrl, caCertPath, apiKeyEntry: JSON.stringify(key.entry), apiKey: key.key, cacheMaxEntries: entries, logLevel: 'warn' },
    ['--expose-gc'],
  );
  try {
    const filled = await host.fillCache(entries, valueBytes);
    const above = filled.rssAfterBytes - filled.rssBeforeBytes;
    return {
      entries,
      valueBytes,
      idleHostMb: Math.round(filled.rssBeforeBytes / MB),
      aboveIdleMb: Math.round(above / MB),
      perEntryBytes: Math.round(above / entries),
      method:
        'the host in its own process (SQLite, one stored credential) after start-up, RSS after forced GCs; then its ' +
        'own CredentialCache (CACHE_MAX_ENTRIES raised to fit) is filled with entries shaped as the reader caches them ' +
        '(metadata row, value, audit details; distinct strings each), and RSS is read again after GCs.',
    };
  } finally {
    await host.stop();
    await vault.stop();
    scratch.remove();
  }
}
