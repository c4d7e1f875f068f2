/** What a shared load is told about itself. */
export interface SharedLoad {
  /** Aborts once every caller waiting for the load has left: the load's I/O takes it (a vault read is then aborted). */
  readonly signal: AbortSignal;
  /**
   * Still the key's load: false once every caller has left or `forget` detached it (an invalidation). Its result must
   * then not be kept: nobody waits for it, or it may be older than the change that detached it.
   */
  readonly current: boolean;
}

class Flight<T> implements SharedLoad {
  readonly controller = new AbortController();
  current = true;
  /** Callers waiting; one without a signal is never subtracted (it cannot leave). */
  waiting = 0;
  promise!: Promise<T>;

  get signal(): AbortSignal {
    return this.controller.signal;
  }
}

/**
 * Single-flight for callers who may leave: concurrent `join`s of one key share one load. Each caller passes its own
 * signal and, when it aborts, stops waiting at once (rejected with `left()`); the load runs on a signal of its own,
 * aborted only when EVERY caller waiting for it has left — one caller's leaving never fails the others. A load all
 * its callers left is also detached at once, so a caller who comes later starts a fresh load instead of joining one
 * being aborted. A caller without a signal never leaves.
 */
export class SharedLoads<T> {
  private readonly flights = new Map<string, Flight<T>>();

  /** @param left the error a caller who leaves is rejected with (a stable code: the vault lib's CANCELLED). */
  constructor(private readonly left: () => Error) {}

  /** A load of `key` is in flight: a `join` now would share it. */
  has(key: string): boolean {
    return this.flights.has(key);
  }

  keys(): IterableIterator<string> {
    return this.flights.keys();
  }

  /**
   * The load of `key` in flight, joined, else `load` started (at once). A caller whose `signal` has already aborted
   * starts and joins nothing.
   */
  join(key: string, load: (flight: SharedLoad) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(this.left());
    const flight = this.flights.get(key) ?? this.start(key, load);
    flight.waiting++;
    if (!signal) return flight.promise;
    return new Promise<T>((resolve, reject) => {
      const leave = () => {
        reject(this.left());
        if (--flight.waiting === 0) this.abandon(key, flight);
      };
      signal.addEventListener('abort', leave, { once: true });
      flight.promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', leave));
    });
  }

  /** Detaches the load of `key` (an invalidation): its callers keep waiting for it; a later `join` starts afresh. */
  forget(key: string): void {
    const flight = this.flights.get(key);
    if (!flight) return;
    flight.current = false;
    this.flights.delete(key);
  }

  /** Detaches every load (see `forget`). */
  forgetAll(): void {
    for (const flight of this.flights.values()) flight.current = false;
    this.flights.clear();
  }

  private start(key: string, load: (flight: SharedLoad) => Promise<T>): Flight<T> {
    const flight = new Flight<T>();
    let settle!: (outcome: Promise<T>) => void;
    flight.promise = new Promise<T>((resolve) => (settle = resolve)).finally(() => {
      if (this.flights.get(key) === flight) this.flights.delete(key);
    });
    // Registered first, then the load runs at once (callers expect their loader to have started when join returns).
    this.flights.set(key, flight);
    try {
      settle(load(flight));
    } catch (e) {
      settle(Promise.reject(e as Error));
    }
    return flight;
  }

  /** Every caller left: nobody is served by the load any more, so it is aborted and a later caller starts its own. */
  private abandon(key: string, flight: Flight<T>): void {
    flight.current = false;
    if (this.flights.get(key) === flight) this.flights.delete(key);
    flight.controller.abort();
  }
}
