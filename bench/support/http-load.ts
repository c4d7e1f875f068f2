import { execFile } from 'node:child_process';
import { LoadResult, runLoad } from './measure';

/** One HTTP load run: GET `url` with `headers`, expecting 200. */
export interface HttpLoad {
  url: string;
  headers?: Record<string, string>;
  ops: number;
  concurrency: number;
}

/**
 * Runs an HTTP load from a separate Node process, so the client's own CPU (fetch costs a few hundred
 * µs per request) is not taken from the server being measured. Resolves with the client's figures.
 */
export function httpLoadInChild(load: HttpLoad): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [__filename, JSON.stringify(load)], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`load generator failed: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').pop()!) as LoadResult);
    });
  });
}

/** Requests the load generator sends before the measured ones (connections, JIT, caches). */
export const warmupRequests = (load: Pick<HttpLoad, 'ops'>): number => Math.min(500, load.ops);

async function child(load: HttpLoad): Promise<void> {
  const get = async () => {
    const res = await fetch(load.url, { headers: load.headers });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`status ${res.status}`);
  };
  await runLoad(warmupRequests(load), load.concurrency, get);
  const result = await runLoad(load.ops, load.concurrency, get);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (require.main === module) {
  child(JSON.parse(process.argv[2]) as HttpLoad).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
