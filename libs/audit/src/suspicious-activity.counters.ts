/** One sliding-window counter an audited event touches. */
export interface SuspiciousCounterHit {
  /** The counter: kind + tenant + actor or resource (identifiers, never a value). */
  key: string;
  /**
   * What is counted distinct within the window (the resource, for distinct reads); absent: every hit
   * counts (failures).
   */
  member?: string;
  windowMs: number;
  /** The count from which the counter's alert is due. */
  alertAt: number;
}

export interface SuspiciousCounterResult {
  /**
   * Distinct members (or hits) within the window, this one included, up to `alertAt`: a window keeps its
   * latest `alertAt` members only, all that deciding the alert needs (an actor enumerating a million
   * credentials must not make the counters hold a million ids).
   */
  count: number;
  /**
   * True for exactly one hit per counter and window once `count` reached `alertAt`: this caller
   * raises the alert; every other one (on any replica sharing the counters) stays quiet until the
   * window has passed.
   */
  alert: boolean;
}

/**
 * Where the suspicious-activity detector keeps its sliding windows. Abstract class = DI token: by
 * default the audit lib counts in process memory (`InProcessSuspiciousActivityCounters`, per
 * process); a host with several replicas provides a shared implementation globally (the reference
 * host: Redis) so thresholds count across replicas and each alert is raised once per window in the
 * whole cluster. An implementation must not throw for an unavailable backend it can fall back from.
 */
export abstract class SuspiciousActivityCounters {
  /** Records `hits` at `now` (epoch ms of the audit lib's clock); one result per hit, in order. */
  abstract hit(now: number, hits: readonly SuspiciousCounterHit[]): Promise<SuspiciousCounterResult[]>;
}

/**
 * One counter's window: its members' hashes and last hit times, oldest first, in `[start, end)` of two
 * typed arrays (no string or Map entry per member: ~16 B each instead of ~110, the id's string and its entry).
 */
interface Window {
  windowMs: number;
  ids: Float64Array;
  times: Float64Array;
  start: number;
  end: number;
}

const FIRST_CAPACITY = 16;

/**
 * A 53-bit hash of `member`, from two 32-bit multiplicative hashes seeded per process: two members of one
 * window collide with odds of ~n²/2⁵⁴ (an undercount by one), and the seeds keep them from being chosen.
 */
function memberHash(member: string, seedA: number, seedB: number): number {
  let a = seedA;
  let b = seedB;
  for (let i = 0; i < member.length; i++) {
    const c = member.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  a = Math.imul(a ^ (a >>> 16), 0x85ebca6b);
  a ^= a >>> 13;
  b = Math.imul(b ^ (b >>> 16), 0xc2b2ae35);
  b ^= b >>> 16;
  return (a >>> 0) * 2 ** 21 + (b >>> 11);
}

/**
 * The default: sliding windows in this process's memory, bounded to `maxKeys` counters (the least
 * recently touched are forgotten beyond it) and swept of expired ones every 1024 hits.
 */
export class InProcessSuspiciousActivityCounters extends SuspiciousActivityCounters {
  private readonly windows = new Map<string, Window>();
  /** counter key → time until which its alert is suppressed. */
  private readonly quietUntil = new Map<string, number>();
  private hits = 0;
  /** Failures count every hit: each is a member of its own, numbered below zero (hashes are not). */
  private sequence = 0;
  private readonly seedA = (Math.random() * 2 ** 32) | 0;
  private readonly seedB = (Math.random() * 2 ** 32) | 0;
  /** The counter touched last (the last in `windows`): a repeat needs no re-insert. */
  private lastKey?: string;

  constructor(private readonly maxKeys = 100_000) {
    super();
  }

  hit(now: number, hits: readonly SuspiciousCounterHit[]): Promise<SuspiciousCounterResult[]> {
    return Promise.resolve(this.hitNow(now, hits));
  }

  /** `hit`, synchronously (the in-process detector answers in the audited call itself). */
  hitNow(now: number, hits: readonly SuspiciousCounterHit[]): SuspiciousCounterResult[] {
    if (++this.hits % 1024 === 0) this.sweep(now);
    return hits.map((h) => {
      const count = this.count(h, now);
      return { count, alert: count >= h.alertAt && this.mayAlert(h.key, now, h.windowMs) };
    });
  }

  /** Counters and quiet periods tracked (for tests / memory metrics). */
  get trackedKeys(): number {
    return this.windows.size + this.quietUntil.size;
  }

  /** Members held in every window together (for tests / memory metrics). */
  get trackedMembers(): number {
    let members = 0;
    for (const w of this.windows.values()) members += w.end - w.start;
    return members;
  }

  private count(h: SuspiciousCounterHit, now: number): number {
    // Every read touches a counter: the same one as the previous read (one busy actor) or the same
    // member (one hot credential) is updated in place instead of deleted and re-inserted.
    let w = this.windows.get(h.key);
    if (!w) {
      w = { windowMs: h.windowMs, ids: new Float64Array(FIRST_CAPACITY), times: new Float64Array(FIRST_CAPACITY), start: 0, end: 0 };
      this.bound(this.windows);
      this.windows.set(h.key, w);
    } else if (this.lastKey !== h.key) {
      this.windows.delete(h.key); // re-insert: Map order = least recently touched first
      this.windows.set(h.key, w);
    }
    this.lastKey = h.key;
    const id = h.member === undefined ? -++this.sequence : memberHash(h.member, this.seedA, this.seedB);
    if (w.end > w.start && w.ids[w.end - 1] === id) {
      w.times[w.end - 1] = now;
    } else {
      for (let i = w.end - 2; i >= w.start; i--) {
        if (w.ids[i] !== id) continue;
        w.ids.copyWithin(i, i + 1, w.end);
        w.times.copyWithin(i, i + 1, w.end);
        w.end--;
        break;
      }
      append(w, id, now, h.alertAt);
    }
    // The oldest first: the count stays min(distinct members in the window, alertAt).
    if (w.end - w.start > h.alertAt) w.start = w.end - h.alertAt;
    const cutoff = now - h.windowMs;
    while (w.start < w.end && w.times[w.start] <= cutoff) w.start++;
    return w.end - w.start;
  }

  private mayAlert(key: string, now: number, windowMs: number): boolean {
    const until = this.quietUntil.get(key);
    if (until !== undefined && now < until) return false;
    if (until === undefined) this.bound(this.quietUntil);
    this.quietUntil.set(key, now + windowMs);
    return true;
  }

  private bound(map: Map<string, unknown>): void {
    while (map.size >= this.maxKeys) {
      const oldest = map.keys().next().value as string;
      map.delete(oldest);
    }
  }

  /** Forgets counters with nothing left in their window, and quiet periods that are over. */
  private sweep(now: number): void {
    for (const [k, w] of this.windows) {
      if (w.end === w.start || w.times[w.end - 1] <= now - w.windowMs) this.windows.delete(k);
    }
    for (const [k, until] of this.quietUntil) if (until <= now) this.quietUntil.delete(k);
  }
}

/**
 * Appends a member at the newest end. At the arrays' end the live part moves to their front, into longer
 * arrays when it fills more than half of them: twice as long, up to twice `alertAt` (the live part never
 * exceeds `alertAt` + 1, so a move then happens at most once per `alertAt` appends).
 */
function append(w: Window, id: number, now: number, alertAt: number): void {
  if (w.end === w.ids.length) {
    const live = w.end - w.start;
    const length = Math.max(live + 1, Math.min(w.ids.length * 2, 2 * alertAt));
    if (live * 2 > w.ids.length && length > w.ids.length) {
      const ids = new Float64Array(length);
      const times = new Float64Array(length);
      ids.set(w.ids.subarray(w.start, w.end));
      times.set(w.times.subarray(w.start, w.end));
      w.ids = ids;
      w.times = times;
    } else {
      w.ids.copyWithin(0, w.start, w.end);
      w.times.copyWithin(0, w.start, w.end);
    }
    w.start = 0;
    w.end = live;
  }
  w.ids[w.end] = id;
  w.times[w.end] = now;
  w.end++;
}
