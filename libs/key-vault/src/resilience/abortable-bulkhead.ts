import { BulkheadRejectedError } from 'cockatiel';

/** A queued call whose caller's signal aborted: it leaves the queue at once and is never run. */
export class LeftQueueError extends Error {
  override readonly name = 'LeftQueueError';
}

interface Waiter {
  resolve: () => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/**
 * At most `capacity` calls running, `queueCapacity` waiting (beyond: cockatiel's `BulkheadRejectedError`,
 * mapped to BULKHEAD_FULL), like cockatiel's bulkhead, except that a waiting call whose signal aborts
 * leaves the queue AT ONCE. cockatiel 3.2 keeps an aborted call queued until its turn and then drops it
 * without starting the next one, so callers who are gone filled the queue (BULKHEAD_FULL for live ones)
 * and each dropped call lost a running slot until the next call ended.
 */
export class AbortableBulkhead {
  private active = 0;
  /** Insertion-ordered: the first waiter is the oldest; an aborted one is deleted in O(1). */
  private readonly queue = new Set<Waiter>();

  constructor(
    readonly capacity: number,
    readonly queueCapacity: number,
  ) {}

  get executionSlots(): number {
    return this.capacity - this.active;
  }

  get queueSlots(): number {
    return this.queueCapacity - this.queue.size;
  }

  async execute<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) throw new LeftQueueError('the caller left before the call was queued');
    if (this.active < this.capacity) this.active++;
    else if (this.queue.size < this.queueCapacity) await this.slot(signal);
    else throw new BulkheadRejectedError(this.capacity, this.queueCapacity);
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  /** Resolves when a finishing call hands this one its slot (`active` is not decremented in between). */
  private slot(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, signal };
      if (signal) {
        waiter.onAbort = () => {
          this.queue.delete(waiter);
          reject(new LeftQueueError('the caller left while the call was queued'));
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.queue.add(waiter);
    });
  }

  private release(): void {
    const next = this.queue.values().next();
    if (next.done) {
      this.active--;
      return;
    }
    const waiter = next.value;
    this.queue.delete(waiter);
    if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    waiter.resolve();
  }
}
