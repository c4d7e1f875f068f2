import { validateCronExpression } from 'cron';
import { z } from 'zod';
import type { Clock } from '../clock';

/** A cron expression the `cron` package accepts (seconds optional). */
export function cronExpressionSchema(message = 'is not a valid cron expression'): z.ZodString {
  return z.string({ error: message }).refine((c) => validateCronExpression(c).valid, { message });
}

/** An IANA time zone name (`Europe/Paris`, `UTC`). */
export function timeZoneSchema(message = 'is not an IANA time zone'): z.ZodString {
  return z.string().min(1).refine(isTimeZone, { message });
}

/** The `clock` option every lib takes (see `libClock`). */
export function clockOptionSchema(message = 'must be a Clock (an object with now(): Date)') {
  return z.custom<Clock>((v) => typeof (v as { now?: unknown } | null)?.now === 'function', message);
}

/**
 * `superRefine` params for a check across fields of an object: it runs even when OTHER fields of the
 * object failed, so the one configuration error still lists every problem (zod skips an object's
 * refinements after any issue inside it), but not when one of `fields` failed: it would read raw input.
 */
export function whenFieldsParsed(...fields: string[]): { when: (payload: z.core.ParsePayload) => boolean } {
  return {
    when: (payload) =>
      typeof payload.value === 'object' && payload.value !== null && !payload.issues.some((i) => fields.includes(String(i.path?.[0]))),
  };
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
