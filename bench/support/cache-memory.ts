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
  /** V8's live heap added by the entries, per entry (RSS adds the heap's room to grow and native memory). */
  heapPerEntryBytes: number;
  /**
   * What the RSS above the idle host's is made of, MB: V8's live heap, its room to grow, and the rest (native).
   * `slabsMb`: the cache's slabs (the cached reads, packed, in a WebAssembly memory), counted in native;
   * `buffersMb`: the bytes of live ArrayBuffers added (a slab that is one when the pool has no room).
   */
  aboveIdleParts: { liveHeapMb: number; heapRoomMb: number; nativeMb: number; slabsMb: number; buffersMb: number };
  method: string;
}

const MB = 1024 * 1024;

/**
 * RSS of the reference host (its own process, `--expose-gc`) with its credentials stored and its cache
 * empty, and after reading each once, so that its in-process cache holds `entries` credentials with values
 * of `valueBytes` as the reader caches them.
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
    const { before, after, slabBytes, slabPoolBytesBefore } = filled;
    // Slabs released into the pool before the baseline would be resident in it and reused by the fill unseen.
    if (slabPoolBytesBefore > 0) throw new Error(`the slab pool held ${slabPoolBytesBefore} bytes before the cache was filled: the baseline would hide them`);
    const above = after.rss - before.rss;
    const live = after.heapUsed - before.heapUsed;
    const heap = after.heapTotal - before.heapTotal;
    return {
      entries,
      valueBytes,
      idleHostMb: Math.round(before.rss / MB),
      aboveIdleMb: Math.round(above / MB),
      perEntryBytes: Math.round(above / entries),
      heapPerEntryBytes: Math.round(live / entries),
      aboveIdleParts: { liveHeapMb: Math.round(live / MB), heapRoomMb: Math.round((heap - live) / MB), nativeMb: Math.round((above - heap) / MB), slabsMb: Math.round(slabBytes / MB), buffersMb: Math.round((after.arrayBuffers - before.arrayBuffers) / MB) },
      method:
        'the host in its own process (SQLite, the local vault, CACHE_MAX_ENTRIES raised to fit) stores the credentials ' +
        'through `CredentialsService.storeMany` (1 KB values, distinct, two tags each); its cache is emptied and RSS read ' +
        'after forced GCs (the baseline below); then each credential is read once through `CredentialsService.get` ' +
        '(row from the database, value from the vault over the SDK, the read audited) and RSS is read again after GCs.',
    };
  } finally {
    await host.stop();
    await vault.stop();
    scratch.remove();
  }
}
