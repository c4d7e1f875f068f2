import { validateCronExpression } from 'cron';
import { z } from 'zod';
import type { Clock } from '../clock';

/** A cron expression the `cron` package accepts (seconds optional). */
export function cronExpressionSchema(message = 'is not a valid cron expression'): z.ZodString {
  return z.string({ error: message }).refine((c) => validateCronExpression(c).valid, { message });
}

/**
 * A PostgreSQL connection URL the `pg` driver can read: it decodes the user, password and host with
 * `decodeURIComponent` and the database name with `decodeURI`, so a stray `%` there (a password pasted unescaped) made it throw a bare `URIError: URI
 * malformed` at the first connection. Its scheme is `postgres:` or `postgresql:` (`socket:` for a Unix socket, as `pg`
 * reads it): `pg` ignores any other, so a Redis or MySQL URL pasted in its place was dialled with PostgreSQL's protocol
 * until the connection retries ran out. libpq's Unix-socket form with a user and no host
 * (`postgresql://u@/db?host=/run/postgresql`) is taken as `pg` takes it (see `parsePostgresUrl`). Trimmed, as a URL
 * read from a file or a secret often ends with a newline. Messages never quote the URL (it may hold a password).
 */
export function postgresUrlSchema(): z.ZodString {
  return z
    .string()
    .trim()
    .refine((text) => parsePostgresUrl(text) !== undefined, { message: 'must be a URL, e.g. postgres://user:password@host:5432/db' })
    .refine((text) => POSTGRES_URL_SCHEMES.includes(parsePostgresUrl(text)?.url.protocol ?? 'postgres:'), {
      message: 'must be a postgres:// or postgresql:// URL (socket: for a Unix socket)',
    })
    .refine(decodesAsPostgresUrl, { message: 'a % in its user, password, host or database name must start an escape (%25 for a % itself): write them percent-encoded' });
}

/** The schemes of a PostgreSQL connection URL `pg` reads as such. */
const POSTGRES_URL_SCHEMES = ['postgres:', 'postgresql:', 'socket:'];

/** Stands for the empty host of `postgresql://u@/db`, which the WHATWG parser refuses (a user needs a host). */
const NO_HOST = 'no-host.invalid';

/**
 * A PostgreSQL connection URL as `pg` reads it, or undefined when it is none: `url`, and its `hostname` — empty for
 * libpq's `postgresql://u@/db?host=/run/postgresql` (a user, no host: `pg` then takes the host from `?host=`), which is
 * no WHATWG URL, so `url` holds a stand-in host there. Read `hostname`, never `url.hostname`.
 */
export function parsePostgresUrl(text: string): { url: URL; hostname: string } | undefined {
  if (URL.canParse(text)) {
    const url = new URL(text);
    return { url, hostname: url.hostname };
  }
  const standIn = text.replace('@/', `@${NO_HOST}/`);
  return standIn !== text && URL.canParse(standIn) ? { url: new URL(standIn), hostname: '' } : undefined;
}

function decodesAsPostgresUrl(text: string): boolean {
  const parsed = parsePostgresUrl(text);
  // No URL is the first check's to report.
  if (parsed === undefined) return true;
  try {
    for (const part of [parsed.url.username, parsed.url.password, parsed.hostname]) decodeURIComponent(part);
    decodeURI(parsed.url.pathname);
    return true;
  } catch {
    return false;
  }
}

/**
 * An integer option in `min..max` whose every problem — not a number, a fraction, out of range — is the one message
 * that says what is wanted (`must be an integer in 1..1000`), where zod's own would say `Invalid input: expected number,
 * received string` or `Too small: expected number to be >=1`. `unit` names it: `of milliseconds`.
 */
export function integerInRange(min: number, max: number, { unit, message }: { unit?: string; message?: string } = {}): z.ZodNumber {
  const text = message ?? `must be an integer${unit ? ` ${unit}` : ''} in ${min}..${max}`;
  return z.number({ error: text }).int(text).min(min, text).max(max, text);
}

/** A boolean option, said so when it is not one (zod: `Invalid input: expected boolean, received string`). */
export function booleanOption(): z.ZodBoolean {
  return z.boolean({ error: 'must be a boolean' });
}

/**
 * Error params that say `message` when the option has the wrong type only (a list given a string, a record given an
 * array): a string `error` would also replace the option's own issues (a misspelt key's "did you mean").
 */
export function whenWrongType(message: string) {
  return { error: (issue: { code?: string }) => (issue.code === 'invalid_type' ? message : undefined) } as const;
}

/** The error params of an object option (or the options themselves) given something else: `must be an object` (see `whenWrongType`). */
export const MUST_BE_AN_OBJECT = whenWrongType('must be an object');

/** An IANA time zone name (`Europe/Paris`, `UTC`); anything else, an empty string or not a string, is the one `message`. */
export function timeZoneSchema(message = 'is not an IANA time zone'): z.ZodString {
  return z.string({ error: message }).refine(isTimeZone, { message });
}

/** The `clock` option every lib takes (see `libClock`). */
export function clockOptionSchema(message = 'must be a Clock (an object with now(): Date)') {
  return z.custom<Clock>((v) => typeof (v as { now?: unknown } | null)?.now === 'function', message);
}

/**
 * Params of a `refine`/`superRefine` across fields of an object (`'readBuffer.batchSize'`, dotted below
 * it): the check runs even when OTHER fields failed, so the one configuration error still lists every
 * problem (zod skips an object's refinements once any field has the wrong type), but not when a field
 * it reads, or an object holding one, failed: it would compare raw input.
 */
export function whenFieldsParsed(...fields: string[]): { when: (payload: z.core.ParsePayload) => boolean } {
  const paths = fields.map((f) => f.split('.'));
  // One path is a prefix of the other: the issue is on the field, inside it, or on an object holding it.
  // An issue of the object itself (path []: an unknown key of a strict object) leaves the fields readable.
  const overlaps = (issue: ReadonlyArray<PropertyKey>, field: string[]) =>
    issue.length > 0 && field.every((k, i) => i >= issue.length || String(issue[i]) === k);
  return {
    when: (payload) =>
      typeof payload.value === 'object' && payload.value !== null && !payload.issues.some((i) => paths.some((p) => overlaps(i.path ?? [], p))),
  };
}

/** How an options error names an own `__proto__` key of a record option (see `listingProtoKey`). */
export const PROTO_KEY_SHOWN = '[__proto__]';

/**
 * A record option (keyed by credential type, event name...) whose own `__proto__` key is listed like any other
 * unknown key: zod's records skip that key without an issue (writing it would replace the parsed record's
 * prototype), so `{ "__proto__": ... }` from a JSON or YAML config passed unreported. It is renamed
 * `PROTO_KEY_SHOWN` before the record parses, so the record's own key check names it; no other input changes.
 */
export function listingProtoKey<S extends z.ZodType>(record: S): z.ZodPreprocess<S, z.input<S>> {
  // The input typed as the record's: a bare preprocess takes `unknown`, which z.input-derived option types (the
  // notifications' mutedTypes) would publish, so an app's tsc no longer checked the keys or the shape.
  return z.preprocess(
    (v: z.input<S>) =>
      typeof v === 'object' && v !== null && !Array.isArray(v) && Object.prototype.hasOwnProperty.call(v, '__proto__')
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k === '__proto__' ? PROTO_KEY_SHOWN : k, x]))
        : v,
    record,
  );
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
