/**
 * `work` on each item in order, at most `limit` at a time; `work` settles its own failures (one that rejects rejects
 * this, the others still running). With `signal`: none started once it aborts, and its reason is thrown once those
 * started have settled.
 */
export async function forEachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>, signal?: AbortSignal): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length && !signal?.aborted) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  signal?.throwIfAborted();
}
