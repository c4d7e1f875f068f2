/** ISO 8601 durations as Key Vault's rotation policies use them (P90D, P1Y2M, PT48H...). */
export const ISO_DURATION = /^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;

/** An ISO 8601 duration in days (a month as 30, a year as 365: what what the policy limits compare), or undefined. */
export function durationDays(s: string): number | undefined {
  const m = ISO_DURATION.exec(s);
  if (!m) return undefined;
  const [y, mo, w, d, h, mi, sec] = m.slice(1).map((x) => Number(x ?? 0));
  return y * 365 + mo * 30 + w * 7 + d + h / 24 + mi / 1440 + sec / 86_400;
}

/**
 * `at` (ms) plus (`sign` -1: minus) an ISO 8601 duration as the calendar counts it (P1M from 31 January is 3 March, as
 * Date does); for a duration `parseRotationPolicy` accepted.
 */
export function addIsoDuration(at: number, duration: string, sign: 1 | -1 = 1): number {
  const [y, mo, w, d, h, mi, sec] = ISO_DURATION.exec(duration)!.slice(1).map((x) => sign * Number(x ?? 0));
  const t = new Date(at);
  t.setUTCFullYear(t.getUTCFullYear() + y, t.getUTCMonth() + mo, t.getUTCDate() + w * 7 + d);
  return t.getTime() + ((h * 60 + mi) * 60 + sec) * 1000;
}
