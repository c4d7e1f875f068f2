/**
 * A `Retry-After` in whole seconds (HTTP's unit) for a wait of `ms`: rounded up, so a client coming back then is not
 * early, and never below 1 — "0" (a break or cooldown about to end) would send the client straight back to be refused.
 */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
