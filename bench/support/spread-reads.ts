/**
 * `--credentials N` of the HTTP read benches (http-read, ab-hosts): each host gets N credentials in the bench's
 * tenant and the reads go round-robin over them, so the audit rows of a run name N credentials rather than one
 * (the query indexes' catch-up then costs what it costs for reads spread over many credentials). N = 1 changes
 * nothing: the host's own credential, one path, as before.
 */
import type { ServerReady } from './server-process';

/** The stored value of a bench credential: `bytes` long (the bare route answers a JSON object of the same size). */
export const benchValue = (bytes: number): string => `bench-${'v'.repeat(Math.max(0, bytes - 6))}`;

/** `--credentials`: a whole count ≥ 1 (absent: 1). */
export function parseCredentials(raw: string | undefined): number {
  if (raw === undefined) return 1;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < 1) throw new Error(`--credentials takes a whole count ≥ 1, not "${raw}"`);
  return n;
}

/**
 * The GET paths of `route` over the host's own credential (first) and the seeded ones, in the order the load
 * generator requests them; the same path shape as the host's own (only the id differs).
 */
export function readPaths(ready: ServerReady, route: 'value' | 'metadata', seededIds: readonly string[]): string[] {
  const first = ready.paths[route];
  const id = first && /^\/v1\/credentials\/([^/]+)/.exec(first)?.[1];
  if (!first || !id) throw new Error(`this server serves no credential ${route} path`);
  const [head, tail] = [first.slice(0, first.indexOf(id)), first.slice(first.indexOf(id) + id.length)];
  return [first, ...seededIds.map((s) => head + s + tail)];
}

/**
 * A cursor over `paths`: each call returns the next one, wrapping round. Constant time per call whatever the
 * count, and shared by every connection of a run, so the requests in flight at once name different credentials.
 */
export function roundRobin(paths: readonly string[]): () => string {
  if (paths.length === 0) throw new Error('round-robin over no paths');
  let next = 0;
  return () => {
    const p = paths[next];
    next = next + 1 === paths.length ? 0 : next + 1;
    return p;
  };
}

/**
 * Stores `count` more credentials in the host through its API (`POST /v1/credentials`, the call that stored its
 * own, with a value of the same size) and returns their ids in order. There is no batch store over HTTP, so
 * `concurrency` requests are in flight at once: 16 keeps the host and the vault busy (1,000 in seconds) and is
 * far below the throttle the benches give the vault (1,000,000 operations a second) and the host's rate limit.
 */
export async function seedCredentials(ready: ServerReady, count: number, valueBytes = 56, concurrency = 16): Promise<string[]> {
  const ids: string[] = new Array<string>(count);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      // c1 is the host's own credential.
      const res = await fetch(`${ready.base}/v1/credentials`, {
        method: 'POST',
        headers: { ...ready.headers, 'content-type': 'application/json' },
        body: JSON.stringify({ integrationId: 'bench', connectionId: `c${i + 2}`, type: 'api_key', value: benchValue(valueBytes) }),
      });
      if (res.status !== 201) throw new Error(`storing bench credential ${i + 2}: ${res.status} ${await res.text()}`);
      ids[i] = ((await res.json()) as { id: string }).id;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return ids;
}

/**
 * Seeds the host up to `credentials` credentials and returns each route's paths over them; undefined for one
 * credential (the load is then the host's own URL alone, as before).
 */
export async function spreadOver(
  ready: ServerReady,
  routes: ReadonlyArray<'value' | 'metadata'>,
  credentials: number,
): Promise<Map<'value' | 'metadata', string[]> | undefined> {
  if (credentials <= 1) return undefined;
  const t0 = performance.now();
  const ids = await seedCredentials(ready, credentials - 1);
  process.stderr.write(`seeded ${ids.length} credentials into ${ready.base} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  return new Map(routes.map((r) => [r, readPaths(ready, r, ids)]));
}
