const WASM_PAGE = 64 * 1024;

/** The part of WebAssembly's API used here (the project's TypeScript libs do not declare it). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
const wasm = (globalThis as { WebAssembly?: { Memory: new (descriptor: { initial: number; maximum: number }) => WasmMemory } }).WebAssembly;

/**
 * Fixed-size slabs for `ByteArena`, carved out of one `WebAssembly.Memory` instead of one ArrayBuffer each.
 *
 * Why: an ArrayBuffer's bytes come from malloc. 1 MiB allocations land in the C heap among everything else
 * the process allocates and frees (TLS and HTTP buffers, SQLite), so the RSS a full cache adds depended on
 * what the heap held before and was churning meanwhile: 100,000 cached 1 KB credentials measured 130–220 MB
 * over the same host for the same live bytes (docs/BENCHMARKS.md, Scale). A WebAssembly memory is its own
 * mapping: its pages are resident once written and only then, so a full cache adds what it holds.
 *
 * A released slab's room is kept and handed to the next `acquire` (of any arena in the process): a
 * WebAssembly memory cannot shrink, so the slabs' pages stay resident at the caches' peak, bounded by their
 * `maxEntries`. (malloc did not return freed 1 MiB chunks amid its heap either.) When WebAssembly is not
 * available (`--jitless`) or its memory is at its maximum, `acquire` returns undefined and the arena falls
 * back to ArrayBuffers.
 */
export class SlabPool {
  private readonly memory: WasmMemory | undefined;
  /** False once the memory could not grow (or never existed): `acquire` then only reuses released slabs. */
  private canGrow: boolean;
  private view = new Uint8Array(0);
  private readonly free: number[] = [];
  private top = 0;

  /**
   * @param slabBytes the size of every slab, a multiple of 64 KiB
   * @param maxBytes the most the pool's memory may hold (at most 4 GiB, WebAssembly's own limit)
   */
  constructor(
    readonly slabBytes: number,
    private readonly maxBytes = 4 * 1024 ** 3,
  ) {
    if (slabBytes <= 0 || slabBytes % WASM_PAGE !== 0) throw new RangeError(`slabBytes must be a positive multiple of ${WASM_PAGE}`);
    try {
      this.memory = wasm && new wasm.Memory({ initial: 0, maximum: Math.floor(maxBytes / WASM_PAGE) });
    } catch {
      this.memory = undefined;
    }
    this.canGrow = this.memory !== undefined;
  }

  /** The offset of a slab of `slabBytes` in `bytes`, or undefined when the pool has no more room. */
  acquire(): number | undefined {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (!this.canGrow || this.top + this.slabBytes > this.maxBytes) return undefined;
    try {
      this.memory!.grow(this.slabBytes / WASM_PAGE);
    } catch {
      // The reservation could not grow (address space, the engine's own limit): fall back from now on.
      this.canGrow = false;
      return undefined;
    }
    const base = this.top;
    this.top += this.slabBytes;
    return base;
  }

  /** Gives a slab back for reuse. Its bytes are not cleared: no arena reads room it has not written. */
  release(base: number): void {
    this.free.push(base);
  }

  /**
   * A view of the whole pool. Growing replaces the memory's buffer (the old one is detached), so take it
   * after any `acquire`, and do not keep it across one.
   */
  get bytes(): Uint8Array {
    if (this.view.byteLength !== this.top) this.view = new Uint8Array(this.memory!.buffer, 0, this.top);
    return this.view;
  }

  /** Bytes the pool has taken from the system (slabs in use and released), and how many are released. */
  stats(): { reservedBytes: number; freeSlabs: number } {
    return { reservedBytes: this.top, freeSlabs: this.free.length };
  }
}
