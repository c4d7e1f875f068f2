/** A repeated reason is said again after this long (the calls between are counted in that line). */
export const SERVING_WARNING_INTERVAL_MS = 60_000;
/** Connections tracked at most: past it, entries older than the interval go, else all (a few lines said twice). */
const MAX_TRACKED = 10_000;

interface Said {
  /** When each reason was last said for the connection (epoch ms). */
  reasons: Map<string, number>;
  /** Calls served the current token without a line since the connection's last one. */
  quiet: number;
}

/**
 * When to say "serving the current access token … until it expires". Each on-demand call inside the refresh-ahead
 * window during a failure episode is served the current token; without this every call logged the same warning (a busy
 * API: hundreds a second for the whole cooldown). Said once per connection and reason a minute; the next line of the
 * connection counts the calls served without one.
 */
export class ServingWarnings {
  private readonly byConnection = new Map<string, Said>();

  /** The suffix to log for a call of `key` served for `reason` at `now`, or undefined: counted, not logged. */
  next(key: string, reason: string, now: number): string | undefined {
    let said = this.byConnection.get(key);
    const at = said?.reasons.get(reason);
    if (said && at !== undefined && now - at < SERVING_WARNING_INTERVAL_MS) {
      said.quiet++;
      return undefined;
    }
    if (!said) {
      if (this.byConnection.size >= MAX_TRACKED) this.prune(now);
      said = { reasons: new Map(), quiet: 0 };
      this.byConnection.set(key, said);
    }
    said.reasons.set(reason, now);
    const quiet = said.quiet;
    said.quiet = 0;
    return quiet > 0 ? ` (served so ${quiet} more time${quiet === 1 ? '' : 's'} since its last such warning)` : '';
  }

  private prune(now: number): void {
    for (const [key, said] of this.byConnection) {
      if ([...said.reasons.values()].every((at) => now - at >= SERVING_WARNING_INTERVAL_MS)) this.byConnection.delete(key);
    }
    if (this.byConnection.size >= MAX_TRACKED) this.byConnection.clear();
  }
}
