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

interface Window {
  windowMs: number;
  /** member → last hit time; Map order = ascending time. */
  members: Map<string, number>;
  /** The member hit last (the last in `members`): a repeat only updates its time. */
  last?: string;
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
  private sequence = 0;
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
    for (const w of this.windows.values()) members += w.members.size;
    return members;
  }

  private count(h: SuspiciousCounterHit, now: number): number {
    // Every read touches a counter: the same one as the previous read (one busy actor) or the same
    // member (one hot credential) is updated in place instead of deleted and re-inserted.
    let w = this.windows.get(h.key);
    if (!w) {
      w = { windowMs: h.windowMs, members: new Map() };
      this.bound(this.windows);
      this.windows.set(h.key, w);
    } else if (this.lastKey !== h.key) {
      this.windows.delete(h.key); // re-insert: Map order = least recently touched first
      this.windows.set(h.key, w);
    }
    this.lastKey = h.key;
    const member = h.member ?? `#${++this.sequence}`;
    if (w.last !== member) w.members.delete(member);
    w.members.set(member, now);
    w.last = member;
    // The oldest first: the count stays min(distinct members in the window, alertAt).
    while (w.members.size > h.alertAt) w.members.delete(w.members.keys().next().value as string);
    const cutoff = now - h.windowMs;
    for (const [m, t] of w.members) {
      if (t > cutoff) break;
      w.members.delete(m);
    }
    return w.members.size;
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
      let last = 0;
      for (const t of w.members.values()) last = t;
      if (last <= now - w.windowMs) this.windows.delete(k);
    }
    for (const [k, until] of this.quietUntil) if (until <= now) this.quietUntil.delete(k);
  }
}
