interface Waiter<T> {
  item: T;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * A bounded FIFO that never drops: when full, `push` waits (back-pressure) and the waiting items are
 * admitted in arrival order as space frees. Items leave only through `remove` — i.e. after they
 * were written — so the depth includes the batch being written and space frees only once it is durable.
 */
export class ReadBuffer<T extends object> {
  private items: T[] = [];
  private readonly waiters: Array<Waiter<T>> = [];

  constructor(private readonly maxSize: number) {}

  get depth(): number {
    return this.items.length;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  get isFull(): boolean {
    return this.items.length >= this.maxSize;
  }

  /** Resolves once `item` is in the buffer. */
  push(item: T): Promise<void> {
    if (this.tryPush(item)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.waiters.push({ item, resolve, reject }));
  }

  /** Adds `item` now if there is space and no one waits before it; false otherwise (nothing added). */
  tryPush(item: T): boolean {
    if (this.waiters.length > 0 || this.items.length >= this.maxSize) return false;
    this.items.push(item);
    return true;
  }

  /** The oldest `n` items, left in place. */
  peek(n: number): T[] {
    return this.items.slice(0, n);
  }

  /** Removes written items and admits waiters into the freed space. */
  remove(written: ReadonlySet<T>): void {
    if (written.size === 0) return;
    this.items = this.items.filter((i) => !written.has(i));
    while (this.waiters.length > 0 && this.items.length < this.maxSize) {
      const w = this.waiters.shift()!;
      this.items.push(w.item);
      w.resolve();
    }
  }

  /** Rejects every waiting `push` (their items were never accepted). */
  rejectWaiters(error: unknown): number {
    const n = this.waiters.length;
    for (const w of this.waiters.splice(0)) w.reject(error);
    return n;
  }
}
