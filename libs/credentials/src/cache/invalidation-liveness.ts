/**
 * How a replica knows it still hears evictions. A connection can die without a word (a network
 * partition drops packets, a paused Redis answers nothing) and keep reporting itself connected for as
 * long as TCP does (hours): each replica publishes a heartbeat every `intervalMs` and stops serving
 * from its cache once it has heard none — its own or another's — for `lostAfterMs`.
 */
export interface InvalidationLiveness {
  intervalMs: number;
  lostAfterMs: number;
}

export const DEFAULT_INVALIDATION_LIVENESS: Readonly<InvalidationLiveness> = { intervalMs: 1000, lostAfterMs: 3000 };

/**
 * What `cache.heartbeat` accepts (the host's variables take the same bounds). At least 3 intervals, so one
 * late or lost heartbeat does not drop the cache; at most 30 s, because the threshold is also how long a
 * partitioned replica may serve a value changed elsewhere, and how long a revoke that could not announce
 * its eviction waits before it returns.
 */
export const HEARTBEAT_LIMITS = {
  minIntervalMs: 100,
  maxIntervalMs: 10_000,
  minLostAfterIntervals: 3,
  maxLostAfterMs: 30_000,
} as const;
