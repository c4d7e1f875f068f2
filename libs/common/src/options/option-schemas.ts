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

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
