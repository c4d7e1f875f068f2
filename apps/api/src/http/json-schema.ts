import type { BoundedList } from '@app/common';

/**
 * Building blocks of the response schemas (the OpenAPI document's success answers, and Fastify's
 * serializer on the hot read routes). The document is OpenAPI 3.0: a value that may be null says
 * `nullable: true` (fast-json-stringify reads it too), never `type: [..., 'null']`.
 *
 * `object<T>()` takes one schema per property of the TypeScript type the body is built from, so a
 * field added to the model without its schema is a compile error — and so is a schema whose
 * optionality or nullability disagrees with the type: an optional property's schema must be wrapped in
 * `optional()`, a nullable one must be `nullable()`, a `Date` must be a `date-time`. `required` lists
 * the other properties. `additionalProperties` stays open: a field added later must not break clients.
 */
export type Schema = Readonly<Record<string, unknown>>;

const OPTIONAL = Symbol('optional');

/** A property that may be absent from the body (never `undefined` in JSON). */
export interface Optional<S extends Schema = Schema> {
  readonly [OPTIONAL]: S;
}

type NullableSchema = Schema & { readonly nullable: true };
type NonNullSchema = Schema & { readonly nullable?: never };
type DateSchema = { readonly format: 'date-time' };

/** The schema a value of type V needs: nullable exactly when V admits null, a date-time when it is a Date. */
type ValueSchema<V> = (null extends V ? NullableSchema : NonNullSchema) & ([Exclude<V, null | undefined>] extends [Date] ? DateSchema : unknown);

type OptionalKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? K : never }[keyof T];

/** One schema per property of T: `optional()` for its optional properties, plain for the others. */
export type Properties<T> = { readonly [K in keyof T]-?: K extends OptionalKeys<T> ? Optional<ValueSchema<T[K]>> : ValueSchema<T[K]> };

/** The body a controller method answers (what its promise resolves to). */
export type Answer<F extends (...args: never[]) => unknown> = Awaited<ReturnType<F>>;

type AllKeys<U> = U extends unknown ? keyof U : never;
type ValueAt<U, K extends PropertyKey> = U extends unknown ? (K extends keyof U ? U[K] : never) : never;

/**
 * A union of object types as one object type: the keys of every member, optional where some member
 * lacks them (`{ level: 'default' } | { level: 'tenant'; overrideId: string }` →
 * `{ level: 'default' | 'tenant'; overrideId?: string }`), so `object<Merged<U>>()` covers every member.
 */
export type Merged<U> = { [K in keyof U]: ValueAt<U, K> } & { [K in Exclude<AllKeys<U>, keyof U>]?: ValueAt<U, K> };

/** Every member of a string union, checked complete by the compiler: `members<'a' | 'b'>({ a: 1, b: 1 })`. */
export const members = <V extends string>(all: Record<V, unknown>): V[] => Object.keys(all) as V[];

export const text = { type: 'string' } as const;
export const integer = { type: 'integer' } as const;
export const number = { type: 'number' } as const;
export const boolean = { type: 'boolean' } as const;
export const instant = { type: 'string', format: 'date-time' } as const;
/** Bytes as base64url (RFC 4648 §5, no padding), as the keys API takes and answers them. */
export const base64url = { type: 'string', format: 'base64url' } as const;
/** `Record<string, string>`: tags. */
export const stringMap = { type: 'object', additionalProperties: text } as const;
/** `Record<string, number>`: counts by an open set of names. */
export const countMap = { type: 'object', additionalProperties: integer } as const;

export const optional = <S extends Schema>(schema: S): Optional<S> => ({ [OPTIONAL]: schema });
/** Null allowed too (an enum lists null as well: OpenAPI 3.0.3 and Ajv want it there). */
export const nullable = <S extends Schema>(schema: S) =>
  ({ ...schema, nullable: true, ...(Array.isArray(schema.enum) ? { enum: [...schema.enum, null] } : {}) }) as S & { readonly nullable: true };
export const arrayOf = (items: Schema) => ({ type: 'array', items }) as const;
export const enumOf = <V extends string>(values: readonly V[]) => ({ type: 'string', enum: [...values] }) as const;

/** Counts keyed by the members of an enum (`Partial<Record<E, number>>`): every key optional. */
export const countsBy = (keys: readonly string[]): Schema => ({ type: 'object', properties: Object.fromEntries(keys.map((k) => [k, integer])) });

/** The object schema of T: every property, `required` but for the optional ones. */
export function object<T>(properties: Properties<T>, extra: Schema = {}): Schema {
  const required: string[] = [];
  const plain: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(properties as Record<string, Schema | Optional>)) {
    if (OPTIONAL in schema) plain[key] = schema[OPTIONAL];
    else {
      plain[key] = schema;
      required.push(key);
    }
  }
  return { type: 'object', ...(required.length > 0 ? { required } : {}), properties: plain, ...extra };
}

/** `{ items: [...] }`, the host's list shape (no paging). */
export const itemsOf = (item: Schema): Schema => ({ type: 'object', required: ['items'], properties: { items: arrayOf(item) } });

/**
 * `{ items: [...], truncated }`, a list answered whole up to a limit (`BoundedList`): `truncated` is true when more
 * matched than `items` holds.
 */
export const boundedItemsOf = (item: Schema, more: string): Schema =>
  object<BoundedList<unknown>>({ items: arrayOf(item), truncated: { ...boolean, description: `true when more matched than items holds (the first ones, in the list's order): ${more}` } });

/** `{ items: [...], nextCursor? }`, the host's paging shape: `nextCursor` is present when another page follows. */
export const pageOf = (item: Schema): Schema => ({
  type: 'object',
  required: ['items'],
  properties: { items: arrayOf(item), nextCursor: { type: 'string', description: 'present when another page follows; pass it back as `cursor`' } },
});
