import { applyDecorators, ArgumentMetadata, BadRequestException, createParamDecorator, ExecutionContext, Type, ValidationError, ValidationPipe } from '@nestjs/common';
import { DECORATORS } from '@nestjs/swagger';
import { plainToInstance, Transform } from 'class-transformer';
import { getMetadataStorage, IsBoolean, IsDate, IsInt, IsObject, Max, Min, validateSync } from 'class-validator';

// Only what the OpenAPI document says is accepted: RFC 3339 date-times as strings, integers as
// decimal digits (query strings, path segments) or JSON integers (bodies). No `0x10`, `1e3`, `true`
// taken as 1, empty strings taken as 0, or trailing NULs.

/** RFC 3339 `date-time` (OpenAPI `format: date-time`): date, time with seconds, zone. */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const DECIMAL_INT = /^(0|[1-9]\d{0,15})$/;
const INVALID_DATE = new Date(NaN);

/** A Date from an RFC 3339 string whose fields are real (no 2030-02-30), else an invalid Date. */
export function parseDateTime(value: unknown): Date {
  if (typeof value !== 'string') return INVALID_DATE;
  const m = RFC3339.exec(value);
  if (!m) return INVALID_DATE;
  const [, y, mo, d, h, mi, s] = m.map(Number);
  const date = new Date(value);
  // setUTCFullYear, not Date.UTC: that one takes a year 0–99 as 1900–1999 (0001-01-01 was refused as not RFC 3339).
  const check = new Date(0);
  check.setUTCFullYear(y, mo - 1, d);
  const fieldsReal = check.getUTCFullYear() === y && check.getUTCMonth() === mo - 1 && check.getUTCDate() === d && h < 24 && mi < 60 && s < 60;
  return fieldsReal ? date : INVALID_DATE;
}

/** A number from a decimal-integer string (query, path), or the number itself; anything else is NaN. */
export function parseDecimalInt(value: unknown): number {
  if (typeof value === 'number') return value;
  return typeof value === 'string' && DECIMAL_INT.test(value) ? Number(value) : NaN;
}

/** An RFC 3339 date-time field (body or query); `nullable` lets an explicit null through (to clear it). */
export function IsDateTime(options: { nullable?: boolean } = {}) {
  const message = `$property must be an RFC 3339 date-time string like 2030-01-31T12:00:00Z${options.nullable ? ' or null' : ''}`;
  return applyDecorators(
    Transform(({ value }) => (value === null && options.nullable ? null : value === undefined ? undefined : parseDateTime(value))),
    IsDate({ message }),
  );
}

/**
 * A JSON object field (tags) taken exactly as sent. class-transformer copies an untyped object key by key
 * and skips every key an object inherits a method for (`constructor`, `toString`, `valueOf`, …): such a
 * tag was dropped from a write that answered 201.
 */
export function IsJsonObject() {
  return applyDecorators(
    Transform(({ obj, key }) => (obj as Record<string, unknown>)[key]),
    IsObject(),
  );
}

/** An integer in a query string: decimal digits only. */
export function QueryInt(min: number, max: number) {
  const message = `$property must be a decimal integer from ${min} to ${max}`;
  return applyDecorators(
    Transform(({ value }) => parseDecimalInt(value)),
    IsInt({ message }),
    Min(min, { message }),
    Max(max, { message }),
  );
}

/**
 * An integer in a JSON body: a JSON number, no larger than 2^53 − 1. JSON.parse rounds a larger one to the nearest
 * double (9007199254740993 became …992), so it would be taken as another number than the one sent.
 */
export function BodyInt(min: number) {
  const message = `$property must be an integer from ${min} to ${Number.MAX_SAFE_INTEGER} (a JSON number)`;
  return applyDecorators(IsInt({ message }), Min(min, { message }), Max(Number.MAX_SAFE_INTEGER, { message }));
}

/** A boolean in a query string: `true` or `false`. */
export function QueryBoolean() {
  return applyDecorators(
    Transform(({ value }) => (value === 'true' ? true : value === 'false' ? false : value)),
    IsBoolean({ message: '$property must be true or false' }),
  );
}

/**
 * A positive integer path segment (e.g. a version number), decimal digits only. A param decorator,
 * not a pipe: the global ValidationPipe would first turn a `number` param into Number('0x1') = 1.
 */
export const PositiveIntParam = createParamDecorator((name: string, ctx: ExecutionContext): number => {
  const raw = ctx.switchToHttp().getRequest<{ params: Record<string, string> }>().params[name];
  if (!isPositiveIntParam(raw)) throw new BadRequestException(`${name} must be a positive decimal integer`);
  return parseDecimalInt(raw);
});

/** Whether a path segment passes PositiveIntParam. */
export function isPositiveIntParam(raw: unknown): boolean {
  const n = parseDecimalInt(raw);
  return Number.isSafeInteger(n) && n >= 1;
}

/**
 * The host's ValidationPipe: unknown fields are an error (a typo in `expiresAt` must not store a
 * credential without expiry), and no message repeats a value — or a property name — from the request.
 */
export function hostValidationPipe(): ValidationPipe {
  return new HostValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    // `target` stays on the errors (never sent): it tells which fields the DTO declares.
    validationError: { target: true, value: false },
    exceptionFactory: (errors) => new BadRequestException(validationMessages(errors)),
  });
}

/**
 * The ValidationPipe, with one shortcut: a query DTO that accepts an empty query (every field
 * optional) is answered for an empty query string without running class-transformer and
 * class-validator per request — most reads send none (a profiled few percent of a read). Whether a
 * DTO accepts `{}` is checked once per DTO class, by transforming and validating `{}` the same way.
 */
class HostValidationPipe extends ValidationPipe {
  private readonly acceptsEmpty = new Map<Type<unknown>, boolean>();

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    const type = metadata.metatype as Type<unknown> | undefined;
    if (metadata.type === 'query' && metadata.data === undefined && type) {
      queryDtos.add(type);
      // Nest deletes these keys before the whitelist looks: refused here, as any undeclared parameter is, not ignored.
      if (value !== null && typeof value === 'object' && PROTOTYPE_KEYS.some((k) => Object.hasOwn(value, k))) throw new BadRequestException([UNKNOWN_QUERY_PARAMETER]);
      // A repeated parameter arrives as an array: for one that takes a single value, its rules' messages ('must be a
      // string', 'must be shorter than…') would not say what is wrong. Declared names only: they are public.
      const repeated = repeatedSingleValued(type, value);
      if (repeated.length > 0) throw new BadRequestException(repeated.map((name) => `${name} may be given once`));
    }
    if ((metadata.type === 'body' || (metadata.type === 'query' && metadata.data === undefined)) && type && this.toValidate(metadata) && inheritedNameUndeclared(type, value)) {
      throw new BadRequestException([metadata.type === 'query' ? UNKNOWN_QUERY_PARAMETER : UNKNOWN_BODY_PROPERTY]);
    }
    if (metadata.type === 'body' && type && this.toValidate(metadata)) {
      const nulls = refusedNulls(type, value);
      if (nulls.length > 0) throw new BadRequestException(nulls);
    }
    if (metadata.type === 'query' && type && isEmptyObject(value) && this.toValidate(metadata)) {
      let accepts = this.acceptsEmpty.get(type);
      if (accepts === undefined) {
        const empty = plainToInstance(type, {}) as object;
        // Also: transforming `{}` adds nothing a plain `new` would not (no exposed defaults).
        accepts = Object.keys(empty).length === Object.keys(new type() as object).length && validateSync(empty, { whitelist: true, forbidNonWhitelisted: true }).length === 0;
        this.acceptsEmpty.set(type, accepts);
      }
      if (accepts) return new type();
    }
    return super.transform(value, metadata);
  }
}

/**
 * One rule for every body: an explicit `null` is taken only where the OpenAPI document says the field is
 * `nullable` (and means what that field documents: clear, inherit, remove). Elsewhere it is 400 naming the field —
 * class-validator's `@IsOptional()` lets null through as if absent, so it reached the services, which took it
 * as absent (a revoke's `tenant`), as a value (a policy's `expectedVersion`), or answered each in its own words.
 * Only declared fields: an undeclared one is refused, unnamed, by the whitelist.
 */
function refusedNulls(dto: Type<unknown>, body: unknown): string[] {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return [];
  const out: string[] = [];
  for (const name of declaredFields(dto)) {
    if (!Object.hasOwn(body, name)) continue;
    const value = (body as Record<string, unknown>)[name];
    const doc = Reflect.getMetadata(DECORATORS.API_MODEL_PROPERTIES, dto.prototype as object, name) as PropertyDoc | undefined;
    if (value === null) {
      if (doc?.nullable === true) continue;
      out.push(doc?.required === false ? `${name} must not be null (leave it out instead)` : `${name} must not be null`);
    } else {
      const at = nullItem(doc, value);
      if (at !== undefined) out.push(`${name} #${at} must not be null`);
    }
  }
  return out;
}

type PropertyDoc = { nullable?: boolean; required?: boolean; isArray?: boolean; items?: { nullable?: boolean }; additionalProperties?: unknown };

/**
 * The position (from 1) of the first null item of a documented list, or value of a documented map (tags), unless the
 * document says its items are nullable: the rule one level down, where each field's own check answered in its words
 * ('an e-mail address is at most 254 characters'). Positions only: a map's keys may be request data.
 */
function nullItem(doc: PropertyDoc | undefined, value: unknown): number | undefined {
  let items: unknown[] | undefined;
  if (doc?.isArray === true && Array.isArray(value)) {
    if (doc.items?.nullable === true) return undefined;
    items = value;
  } else if (doc?.additionalProperties !== null && typeof doc?.additionalProperties === 'object' && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    if ((doc.additionalProperties as { nullable?: boolean }).nullable === true) return undefined;
    items = Object.values(value);
  }
  const i = items?.indexOf(null) ?? -1;
  return i >= 0 ? i + 1 : undefined;
}

/** DTO classes a whole query string is read into: an unknown field of theirs is a query parameter, not a body property. */
const queryDtos = new WeakSet<object>();
const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'prototype'];
const UNKNOWN_QUERY_PARAMETER = 'the query has a parameter that is not accepted';
const UNKNOWN_BODY_PROPERTY = 'the body has a property that is not accepted';

/**
 * An undeclared own key named like a member every object inherits (toString, valueOf, hasOwnProperty, …):
 * class-transformer skips such a key (the instance already has a function there), so the whitelist never saw it
 * and it was dropped silently where any other undeclared name is 400. DTOs here have no nested classes.
 */
function inheritedNameUndeclared(dto: Type<unknown>, value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const inherited = Object.keys(value).filter((k) => k in Object.prototype);
  if (inherited.length === 0) return false;
  const declared = new Set(declaredFields(dto));
  return inherited.some((k) => !declared.has(k));
}

/** Per query DTO: its declared fields that take one value (no `@IsArray()`, no rule with `each`). */
const singleValuedFields = new WeakMap<Type<unknown>, ReadonlySet<string>>();

function repeatedSingleValued(dto: Type<unknown>, query: unknown): string[] {
  if (query === null || typeof query !== 'object') return [];
  let single = singleValuedFields.get(dto);
  if (single === undefined) {
    const metadata = getMetadataStorage().getTargetValidationMetadatas(dto, '', true, false);
    const lists = new Set(metadata.filter((m) => m.each === true || m.name === 'isArray').map((m) => m.propertyName));
    single = new Set(metadata.map((m) => m.propertyName).filter((name) => !lists.has(name)));
    singleValuedFields.set(dto, single);
  }
  return Object.keys(query).filter((name) => single.has(name) && Array.isArray((query as Record<string, unknown>)[name]));
}

function isEmptyObject(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  for (const key in value) if (Object.hasOwn(value, key)) return false;
  return true;
}

export function validationMessages(errors: ValidationError[]): string[] {
  const out: string[] = [];
  for (const e of errors) {
    const constraints = e.constraints ?? {};
    if (constraints.whitelistValidation !== undefined) {
      // An unknown property's name may itself be data (a pasted secret): it is never repeated. A near
      // miss of a declared field is answered with the declared name, which is public.
      const guess = closestField(e.property, e.target ? declaredFields(e.target.constructor as Type<unknown>) : []);
      const unknown = e.target && queryDtos.has(e.target.constructor) ? UNKNOWN_QUERY_PARAMETER : UNKNOWN_BODY_PROPERTY;
      out.push(`${unknown}${guess ? ` (did you mean ${guess}?)` : ''}`);
    }
    const rules = Object.entries(constraints).filter(([name]) => name !== 'whitelistValidation');
    // A required field left out: one message saying so, rather than every rule a value would have to pass.
    const leftOut = constraints.whitelistValidation === undefined && e.target !== undefined && (e.target as Record<string, unknown>)[e.property] === undefined;
    if (leftOut && rules.length > 0) out.push(`${e.property} is required`);
    else for (const [, message] of rules) out.push(message);
  }
  return out.length > 0 ? [...new Set(out)] : ['invalid request'];
}

/** The fields a DTO class declares (its class-validator metadata). */
export function declaredFields(dto: Type<unknown>): string[] {
  const metadata = getMetadataStorage().getTargetValidationMetadatas(dto, '', true, false);
  return [...new Set(metadata.map((m) => m.propertyName))];
}

/** The declared field within two edits of `name` (case-insensitive), if exactly one is that close. */
function closestField(name: string, fields: string[]): string | undefined {
  if (name.length > 64) return undefined;
  const close = fields.filter((f) => editDistance(name.toLowerCase(), f.toLowerCase()) <= 2);
  return close.length === 1 ? close[0] : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

/** UUIDs are case-insensitive (RFC 9562); ids are stored lower case: an upper-case id named nothing (a revoke of it answered 404). */
const lowerCase = (value: unknown): unknown =>
  typeof value === 'string' ? value.toLowerCase() : Array.isArray(value) ? value.map((v: unknown) => (typeof v === 'string' ? v.toLowerCase() : v)) : value;

/** A UUID body field (or list of them) taken in any case, as stored (lower case). Before `@IsUUID`. */
export const LowerCaseUuid = () => Transform(({ value }) => lowerCase(value));
